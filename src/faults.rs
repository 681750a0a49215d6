//! Failure points a test can arm, to prove that a step which meets a broken database retries or
//! rolls back as it should. A point is named by the caller with something unique to one test (an
//! engine's id, an Idempotency-Key), so tests running side by side in one process never trip each
//! other's. Unarmed, a check is one relaxed atomic load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ANY: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// The next `times` checks of `point` fail.
pub fn arm(point: &str, times: u32) {
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    armed.get_or_insert_with(HashMap::new).insert(point.to_string(), times);
    ANY.store(true, Ordering::Relaxed);
}

/// Whether this check of the point named by `point()` should fail (and counts it).
pub fn hit(point: impl FnOnce() -> String) -> bool {
    if !ANY.load(Ordering::Relaxed) {
        return false;
    }
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    let Some(map) = armed.as_mut() else { return false };
    let name = point();
    match map.get_mut(&name) {
        Some(left) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    }
}

/// The error an armed point produces: what a dropped database connection looks like to callers.
pub fn injected(point: &str) -> crate::domain::Error {
    crate::domain::Error::internal(format!("injected failure at {point}"))
}

/// Test only: a deliberate bug, armed for the whole process when `SMSCAST_FAULT_DOUBLE_CHARGE`
/// is set (read once at startup by `arm_from_env`): every charge against a hold is made a second
/// time under another key. It exists so the soak harness's own test can show the harness catches
/// a double charge (I6); nothing else arms it.
pub const DOUBLE_CHARGE: &str = "double_charge";

/// Arms the deliberate bugs named in the environment (see `DOUBLE_CHARGE`). Called once by `main`.
pub fn arm_from_env() {
    if std::env::var_os("SMSCAST_FAULT_DOUBLE_CHARGE").is_some() {
        arm(DOUBLE_CHARGE, u32::MAX);
    }
}
