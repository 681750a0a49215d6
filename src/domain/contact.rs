//! Contact rules: consent states, tag and field normalisation.

use super::error::Error;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    OptedIn,
    OptedOut,
    Unknown,
}

impl Consent {
    pub fn as_str(self) -> &'static str {
        match self {
            Consent::OptedIn => "opted_in",
            Consent::OptedOut => "opted_out",
            Consent::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Consent> {
        match s {
            "opted_in" => Some(Consent::OptedIn),
            "opted_out" => Some(Consent::OptedOut),
            "unknown" => Some(Consent::Unknown),
            _ => None,
        }
    }

    /// Lenient reading of a CSV cell: what stores' exports actually contain.
    pub fn parse_loose(s: &str) -> Option<Consent> {
        match s.trim().to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
            "opted_in" | "optedin" | "opt_in" | "yes" | "y" | "true" | "1" | "subscribed" | "granted" => Some(Consent::OptedIn),
            "opted_out" | "optedout" | "opt_out" | "no" | "n" | "false" | "0" | "unsubscribed" | "revoked" => Some(Consent::OptedOut),
            "unknown" | "" => Some(Consent::Unknown),
            _ => None,
        }
    }
}

pub const MAX_NAME: usize = 100;
pub const MAX_EMAIL: usize = 254;
pub const MAX_TAG: usize = 64;
pub const MAX_TAGS: usize = 50;

/// Tags are trimmed and lower-cased so "VIP" and "vip " are one tag.
pub fn normalize_tag(raw: &str) -> Result<String, Error> {
    let t = raw.trim().to_lowercase();
    if t.is_empty() {
        return Err(Error::invalid("invalid_tag", "A tag cannot be empty.").with_details(serde_json::json!({"field": "tags"})));
    }
    if t.chars().count() > MAX_TAG {
        return Err(Error::invalid("invalid_tag", format!("The tag \"{t}\" is longer than {MAX_TAG} characters."))
            .with_details(serde_json::json!({"field": "tags"})));
    }
    Ok(t)
}

pub fn normalize_tags<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for r in raw {
        let t = normalize_tag(r)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(Error::invalid("too_many_tags", format!("A contact can have at most {MAX_TAGS} tags.")));
    }
    Ok(out)
}

/// Empty strings mean "no value"; over-long values are an error naming the field.
pub fn clean_text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, Error> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max => Err(Error::invalid_field(field, format!("{field} is longer than {max} characters."))),
        Some(v) => Ok(Some(v.to_string())),
    }
}

pub fn clean_email(value: Option<&str>) -> Result<Option<String>, Error> {
    let v = clean_text("email", value, MAX_EMAIL)?;
    if let Some(e) = &v {
        let ok = e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
            && !e.contains(char::is_whitespace);
        if !ok {
            return Err(Error::invalid("invalid_email", format!("\"{e}\" is not an email address."))
                .with_details(serde_json::json!({"field": "email"})));
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised_and_deduplicated() {
        assert_eq!(normalize_tags(["VIP", " vip ", "Athens"]).unwrap(), vec!["vip", "athens"]);
        assert!(normalize_tags(["  "]).is_err());
    }

    #[test]
    fn consent_cells_are_read_leniently() {
        assert_eq!(Consent::parse_loose("Yes"), Some(Consent::OptedIn));
        assert_eq!(Consent::parse_loose("opted-out"), Some(Consent::OptedOut));
        assert_eq!(Consent::parse_loose(""), Some(Consent::Unknown));
        assert_eq!(Consent::parse_loose("maybe"), None);
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(clean_email(Some("a@b.gr")).unwrap().is_some());
        assert!(clean_email(Some("nope")).is_err());
        assert_eq!(clean_email(Some(" ")).unwrap(), None);
    }

    proptest::proptest! {
        /// A normalised tag is its own normal form, so a stored tag matches the tag it came from.
        #[test]
        fn tags_normalise_once(raw in crate::domain::fuzz::nasty_text(70)) {
            if let Ok(t) = normalize_tag(&raw) {
                proptest::prop_assert_eq!(normalize_tag(&t).ok(), Some(t));
            }
        }

        #[test]
        fn cells_are_cleaned_or_refused(raw in crate::domain::fuzz::nasty_text(300)) {
            let _ = Consent::parse_loose(&raw);
            if let Ok(Some(e)) = clean_email(Some(&raw)) {
                proptest::prop_assert_eq!(clean_email(Some(&e)).ok(), Some(Some(e)));
            }
            if let Ok(Some(v)) = clean_text("first_name", Some(&raw), MAX_NAME) {
                proptest::prop_assert!(v.chars().count() <= MAX_NAME && v == v.trim());
            }
        }
    }
}
