//! Store (tenant) settings rules.

use super::error::Error;
use super::phone;

pub const LANGUAGES: [&str; 2] = ["el", "en"];

/// The platform's own sender name: any store may use it without the operator's approval.
pub const PLATFORM_SENDER: &str = "SMSCAST";

pub fn validate_name(name: &str) -> Result<String, Error> {
    let n = name.trim();
    if n.is_empty() {
        return Err(Error::invalid("invalid_name", "The name cannot be empty.").with_details(serde_json::json!({"field": "name"})));
    }
    if n.chars().count() > 100 {
        return Err(
            Error::invalid("invalid_name", "The name is longer than 100 characters.").with_details(serde_json::json!({"field": "name"}))
        );
    }
    Ok(n.to_string())
}

pub fn validate_country(code: &str) -> Result<String, Error> {
    phone::parse_country(code).map(|_| code.trim().to_ascii_uppercase()).ok_or_else(|| {
        Error::invalid("invalid_country", format!("\"{code}\" is not a country code we know (use two letters, like GR)."))
            .with_details(serde_json::json!({"field": "default_country"}))
    })
}

pub fn validate_language(code: &str) -> Result<String, Error> {
    let c = code.trim().to_ascii_lowercase();
    if LANGUAGES.contains(&c.as_str()) {
        Ok(c)
    } else {
        Err(Error::invalid("invalid_language", format!("\"{code}\" is not a supported language (el or en)."))
            .with_details(serde_json::json!({"field": "language"})))
    }
}

/// IANA names ("Europe/Athens") or "UTC". Checked for shape only: the zone database is not embedded.
pub fn validate_timezone(tz: &str) -> Result<String, Error> {
    let t = tz.trim();
    let shape_ok = t == "UTC"
        || (t.contains('/') && t.split('/').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))));
    if shape_ok && t.len() <= 64 {
        Ok(t.to_string())
    } else {
        Err(Error::invalid("invalid_timezone", format!("\"{tz}\" is not a time zone name like Europe/Athens."))
            .with_details(serde_json::json!({"field": "timezone"})))
    }
}

/// A sender is 3–11 letters/digits with at least one letter (alphanumeric sender id) or an E.164 number.
pub fn validate_sender(sender: &str) -> Result<String, Error> {
    let s = sender.trim();
    let alnum =
        (3..=11).contains(&s.chars().count()) && s.chars().all(|c| c.is_ascii_alphanumeric()) && s.chars().any(|c| c.is_ascii_alphabetic());
    let e164 = s.starts_with('+') && (9..=16).contains(&s.len()) && s[1..].chars().all(|c| c.is_ascii_digit()) && !s[1..].starts_with('0');
    if alnum || e164 {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(
            "invalid_sender",
            format!(
                "\"{sender}\" cannot be a sender: use 3 to 11 letters and digits (at least one letter), or a phone number in +30… form."
            ),
        )
        .with_details(serde_json::json!({"field": "sender"})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders() {
        assert!(validate_sender("MyShop").is_ok());
        assert!(validate_sender("+306912345678").is_ok());
        assert!(validate_sender("AB").is_err());
        assert!(validate_sender("Too Long Name").is_err());
        assert!(validate_sender("12345").is_err());
        assert!(validate_sender("shop!").is_err());
    }

    #[test]
    fn settings() {
        assert_eq!(validate_country("gr").unwrap(), "GR");
        assert!(validate_country("XX").is_err());
        assert!(validate_timezone("Europe/Athens").is_ok());
        assert!(validate_timezone("Athens time").is_err());
        assert_eq!(validate_language("EL").unwrap(), "el");
        assert!(validate_language("fr").is_err());
    }
}
