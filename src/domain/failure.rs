//! Why a message was not sent, in the words the store owner reads.

/// Failure categories: (code, explanation, whether retrying can help).
pub const CATEGORIES: [(&str, &str, bool); 8] = [
    ("invalid_number", "The number is not a valid mobile number; the provider refused it.", false),
    ("provider_rejected", "The provider rejected the message for this number.", false),
    ("rate_limited", "The provider kept asking us to slow down and the attempts ran out.", true),
    ("timeout", "The provider did not answer in time, repeatedly.", true),
    ("provider_error", "The provider had errors on its side, repeatedly.", true),
    (
        "unknown_outcome",
        "We lost track of the message while it was being sent; it may have arrived. It is never resent automatically.",
        false,
    ),
    ("insufficient_credits", "There were not enough credits reserved for this message.", true),
    ("opted_out", "The contact opted out after the campaign was sent; they will not be messaged.", false),
];
