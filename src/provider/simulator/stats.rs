//! What the simulator counted, for tests and benchmarks (`GET /stats`).

use super::{Simulator, lock};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub accepted: u64,
    /// Accepted messages whose reference had not been seen before.
    pub unique_references: u64,
    /// Accepted messages whose reference had: a duplicate send.
    pub duplicate_references: u64,
    /// Per-message rejections (whole-call faults are not counted).
    pub rejected: u64,
}

impl Simulator {
    pub fn stats(&self) -> Stats {
        lock(&self.shared.state).stats
    }
}
