//! Why a message was not sent, in the words the store owner reads. The one list of failure codes:
//! the engine records them, listings filter by them, `failures` counts them and `retry-failed`
//! re-queues exactly the retryable ones.

/// The `error_code` of a message cancelled before it was sent (with its campaign): a reason, not a
/// failure, so it is no `FailureCode` and never counted or retried as one.
pub const CANCELLED: &str = "cancelled";

/// A message's failure code: its `error_code` column, and the name of its failure category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    InvalidNumber,
    ProviderRejected,
    RateLimited,
    Timeout,
    ProviderError,
    UnknownOutcome,
    InsufficientCredits,
    OptedOut,
}

impl FailureCode {
    /// Every code, in the order the failures report lists them.
    pub const ALL: [FailureCode; 8] = [
        FailureCode::InvalidNumber,
        FailureCode::ProviderRejected,
        FailureCode::RateLimited,
        FailureCode::Timeout,
        FailureCode::ProviderError,
        FailureCode::UnknownOutcome,
        FailureCode::InsufficientCredits,
        FailureCode::OptedOut,
    ];

    /// The code as stored and shown (also the category's name).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::InvalidNumber => "invalid_number",
            FailureCode::ProviderRejected => "provider_rejected",
            FailureCode::RateLimited => "rate_limited",
            FailureCode::Timeout => "timeout",
            FailureCode::ProviderError => "provider_error",
            FailureCode::UnknownOutcome => "unknown_outcome",
            FailureCode::InsufficientCredits => "insufficient_credits",
            FailureCode::OptedOut => "opted_out",
        }
    }

    pub fn parse(code: &str) -> Option<FailureCode> {
        FailureCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether sending again can help (`retry-failed` re-queues only these).
    pub fn retryable(self) -> bool {
        matches!(self, FailureCode::RateLimited | FailureCode::Timeout | FailureCode::ProviderError | FailureCode::InsufficientCredits)
    }

    /// What happened, for the store owner.
    pub fn explanation(self) -> &'static str {
        match self {
            FailureCode::InvalidNumber => "The number is not a valid mobile number; the provider refused it.",
            FailureCode::ProviderRejected => "The provider rejected the message for this number.",
            FailureCode::RateLimited => "The provider kept asking us to slow down and the attempts ran out.",
            FailureCode::Timeout => "The provider did not answer in time, repeatedly.",
            FailureCode::ProviderError => "The provider had errors on its side, repeatedly.",
            FailureCode::UnknownOutcome => {
                "The provider may have this message: its answer never reached us (a timeout, a dropped connection, an answer we \
                 could not match) or the worker sending it stopped. It is not charged and never resent automatically; you may send \
                 it again yourself, at the risk of a duplicate."
            }
            FailureCode::InsufficientCredits => "There were not enough credits reserved for this message.",
            FailureCode::OptedOut => "The contact opted out after the campaign started; they are not messaged and not charged.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailureCode;

    #[test]
    fn codes_round_trip_and_only_provider_trouble_is_retryable() {
        for c in FailureCode::ALL {
            assert_eq!(FailureCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(FailureCode::parse(super::CANCELLED), None);
        let retryable: Vec<&str> = FailureCode::ALL.into_iter().filter(|c| c.retryable()).map(FailureCode::as_str).collect();
        assert_eq!(retryable, ["rate_limited", "timeout", "provider_error", "insufficient_credits"]);
    }
}
