//! Credit arithmetic: what a message costs.

use serde::Serialize;

/// How messages are billed. Providers bill per segment, so that is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Billing {
    #[default]
    PerSegment,
    PerMessage,
}

impl Billing {
    /// Credits for one message of `segments` parts (1 credit per segment, or per message).
    pub fn cost(self, segments: u32) -> i64 {
        match self {
            Billing::PerSegment => i64::from(segments),
            Billing::PerMessage => i64::from(segments.min(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs() {
        assert_eq!(Billing::PerSegment.cost(3), 3);
        assert_eq!(Billing::PerMessage.cost(3), 1);
        assert_eq!(Billing::PerMessage.cost(0), 0);
    }
}
