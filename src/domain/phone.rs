//! Phone numbers: parsed with libphonenumber metadata, stored as E.164.

use super::error::Error;
use phonenumber::{Mode, Type as PhoneNumberType, country::Id};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub e164: String,
    pub mobile: bool,
}

/// Why a number was refused; the `code` is stable, the message is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneError {
    pub reason: &'static str,
    pub message: String,
}

impl From<PhoneError> for Error {
    fn from(e: PhoneError) -> Self {
        Error::invalid("invalid_phone", e.message).with_details(serde_json::json!({ "field": "phone", "reason": e.reason }))
    }
}

/// Parses an ISO 3166 alpha-2 country code ("GR", "gr").
pub fn parse_country(code: &str) -> Option<Id> {
    Id::from_str(&code.trim().to_ascii_uppercase()).ok()
}

/// Parses `raw` as written by a person: national formats for `country`, `+30 …`, `0030 …`, spaces,
/// dashes, dots and parentheses. Letters are refused (vanity numbers are not what stores import).
pub fn parse(raw: &str, country: Id) -> Result<Phone, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError { reason: "empty", message: "The phone number is empty.".into() });
    }
    if let Some(bad) = trimmed.chars().find(|c| !(c.is_ascii_digit() || " +-().\u{a0}/".contains(*c))) {
        return Err(PhoneError {
            reason: "invalid_characters",
            message: format!("The phone number \"{trimmed}\" contains '{bad}'; only digits, spaces, +, -, ( and ) are allowed."),
        });
    }
    let digits = trimmed.chars().filter(char::is_ascii_digit).count();
    if digits < 6 {
        return Err(PhoneError { reason: "too_short", message: format!("The phone number \"{trimmed}\" is too short.") });
    }
    if digits > 17 {
        return Err(PhoneError { reason: "too_long", message: format!("The phone number \"{trimmed}\" is too long.") });
    }
    let parsed = phonenumber::parse(Some(country), trimmed)
        .map_err(|_| PhoneError { reason: "unparsable", message: format!("\"{trimmed}\" is not a phone number we can read.") })?;
    if !phonenumber::is_valid(&parsed) {
        return Err(PhoneError {
            reason: "invalid_number",
            message: format!("\"{trimmed}\" is not a valid phone number for its country."),
        });
    }
    let mobile =
        matches!(parsed.number_type(&phonenumber::metadata::DATABASE), PhoneNumberType::Mobile | PhoneNumberType::FixedLineOrMobile);
    Ok(Phone { e164: parsed.format().mode(Mode::E164).to_string(), mobile })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr(raw: &str) -> Result<Phone, PhoneError> {
        parse(raw, Id::GR)
    }

    #[test]
    fn greek_mobiles_in_every_common_spelling_are_one_number() {
        for raw in ["6912345678", "+30 691 234 5678", "0030 6912345678", "+30-691-234-5678", "(+30) 691 2345678", "  +306912345678  "] {
            let p = gr(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
            assert_eq!(p.e164, "+306912345678", "{raw}");
            assert!(p.mobile, "{raw}");
        }
    }

    #[test]
    fn landlines_are_valid_but_not_mobile() {
        let p = gr("210 123 4567").unwrap();
        assert_eq!(p.e164, "+302101234567");
        assert!(!p.mobile);
    }

    #[test]
    fn international_numbers_keep_their_country() {
        assert_eq!(gr("+44 7911 123456").unwrap().e164, "+447911123456");
        assert_eq!(parse("(201) 555-0123", Id::US).unwrap().e164, "+12015550123");
        assert_eq!(parse("030 1234567", Id::DE).unwrap().e164, "+49301234567");
    }

    #[test]
    fn rejects_letters_short_long_and_invalid() {
        assert_eq!(gr("69123abc78").unwrap_err().reason, "invalid_characters");
        assert_eq!(gr("1-800-FLOWERS").unwrap_err().reason, "invalid_characters");
        assert_eq!(gr("123").unwrap_err().reason, "too_short");
        assert_eq!(gr("+30 691234567812345678").unwrap_err().reason, "too_long");
        assert_eq!(gr("").unwrap_err().reason, "empty");
        assert_eq!(gr("6912").unwrap_err().reason, "too_short");
        assert_eq!(gr("+30 12345678").unwrap_err().reason, "invalid_number");
    }
}
