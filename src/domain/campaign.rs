//! Campaign rules: statuses, priorities, audiences, segment rules and field validation.

use super::contact::Consent;
use super::error::{Error, code};
use super::render::{Template, TemplateError};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Scheduled,
    Sending,
    Paused,
    Sent,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 7] =
        [Status::Draft, Status::Scheduled, Status::Sending, Status::Paused, Status::Sent, Status::Failed, Status::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Scheduled => "scheduled",
            Status::Sending => "sending",
            Status::Paused => "paused",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Only campaigns that have not started can be edited or deleted.
    pub fn editable(self) -> bool {
        matches!(self, Status::Draft | Status::Scheduled)
    }
}

/// An audience that names a segment this store does not have.
pub fn unknown_segment(id: i64) -> Error {
    Error::invalid(code::UNKNOWN_SEGMENT, "The audience names a segment that does not exist.")
        .with_details(json!({"field": "audience.id", "segment_id": id}))
}

pub fn invalid_state(current: &str, action: &str) -> Error {
    Error::conflict(code::INVALID_STATE, format!("A {current} campaign cannot be {action}.")).with_details(json!({"status": current}))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Priority::Low, Priority::Normal, Priority::High, Priority::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Higher is claimed first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }
}

/// Who a campaign goes to. Only `opted_in` contacts are ever messaged, whatever the audience says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Audience {
    All,
    Tags {
        #[serde(default)]
        any: Vec<String>,
        #[serde(default)]
        all: Vec<String>,
    },
    Segment {
        id: i64,
    },
}

impl Audience {
    /// Normalises tags and checks the audience can match someone.
    pub fn validate(self) -> Result<Audience, Error> {
        match self {
            Audience::Tags { any, all } => {
                let any = super::contact::normalize_tags(any.iter().map(String::as_str))?;
                let all = super::contact::normalize_tags(all.iter().map(String::as_str))?;
                if any.is_empty() && all.is_empty() {
                    return Err(Error::invalid("invalid_audience", "A tag audience needs at least one tag in \"any\" or \"all\".")
                        .with_details(json!({"field": "audience"})));
                }
                Ok(Audience::Tags { any, all })
            }
            other => Ok(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    #[default]
    All,
    Any,
}

/// One condition of a segment: `{"field": "tag", "op": "has", "value": "vip"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub field: String,
    pub op: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRules {
    #[serde(default, rename = "match")]
    pub match_: Match,
    pub rules: Vec<Rule>,
}

/// A validated condition, ready to be turned into SQL by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    ConsentIs(Consent, bool),
    HasTag(String, bool),
    /// created_at/updated_at compared with epoch ms: (column, before?, ms)
    Date(&'static str, bool, i64),
    /// (column, op, lower-cased value)
    Text(&'static str, TextOp, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Eq,
    Contains,
    StartsWith,
    IsEmpty,
    NotEmpty,
}

impl SegmentRules {
    pub fn conditions(&self) -> Result<Vec<Condition>, Error> {
        if self.rules.is_empty() || self.rules.len() > 20 {
            return Err(
                Error::invalid("invalid_segment", "A segment needs between 1 and 20 rules.").with_details(json!({"field": "rules"}))
            );
        }
        self.rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.condition().map_err(|m| {
                    Error::invalid("invalid_segment", format!("Rule {}: {m}", i + 1)).with_details(json!({"field": format!("rules[{i}]")}))
                })
            })
            .collect()
    }
}

impl Rule {
    fn value(&self) -> Result<&str, String> {
        self.value.as_deref().filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("\"{}\" on {} needs a value.", self.op, self.field))
    }

    fn condition(&self) -> Result<Condition, String> {
        let bad_op = || format!("\"{}\" is not an operator for {}.", self.op, self.field);
        match self.field.as_str() {
            "consent" => {
                let c = Consent::parse(self.value()?).ok_or_else(|| "consent must be opted_in, opted_out or unknown.".to_string())?;
                match self.op.as_str() {
                    "eq" => Ok(Condition::ConsentIs(c, true)),
                    "neq" => Ok(Condition::ConsentIs(c, false)),
                    _ => Err(bad_op()),
                }
            }
            "tag" => {
                let t = super::contact::normalize_tag(self.value()?).map_err(|e| e.message)?;
                match self.op.as_str() {
                    "has" => Ok(Condition::HasTag(t, true)),
                    "not_has" => Ok(Condition::HasTag(t, false)),
                    _ => Err(bad_op()),
                }
            }
            "created_at" | "updated_at" => {
                let col = if self.field == "created_at" { "created_at" } else { "updated_at" };
                let ms = super::time::parse_rfc3339(self.value()?)
                    .ok_or_else(|| format!("\"{}\" is not a date like 2026-01-31T00:00:00Z.", self.value.as_deref().unwrap_or("")))?;
                match self.op.as_str() {
                    "before" => Ok(Condition::Date(col, true, ms)),
                    "after" => Ok(Condition::Date(col, false, ms)),
                    _ => Err(bad_op()),
                }
            }
            "first_name" | "last_name" | "email" | "phone" => {
                let col = match self.field.as_str() {
                    "first_name" => "first_name",
                    "last_name" => "last_name",
                    "email" => "email",
                    _ => "phone",
                };
                let op = match self.op.as_str() {
                    "eq" => TextOp::Eq,
                    "contains" => TextOp::Contains,
                    "starts_with" => TextOp::StartsWith,
                    "is_empty" => TextOp::IsEmpty,
                    "not_empty" => TextOp::NotEmpty,
                    _ => return Err(bad_op()),
                };
                let v = if matches!(op, TextOp::IsEmpty | TextOp::NotEmpty) { String::new() } else { self.value()?.trim().to_lowercase() };
                Ok(Condition::Text(col, op, v))
            }
            other => Err(format!(
                "\"{other}\" is not a field segments can use (consent, tag, created_at, updated_at, first_name, last_name, email, phone)."
            )),
        }
    }
}

pub fn validate_name(name: &str) -> Result<String, Error> {
    let n = name.trim();
    if n.is_empty() {
        return Err(Error::invalid("empty_name", "Give the campaign a name.").with_details(json!({"field": "name"})));
    }
    if n.chars().count() > 200 {
        return Err(Error::invalid("name_too_long", "The name is longer than 200 characters.").with_details(json!({"field": "name"})));
    }
    Ok(n.to_string())
}

/// Checks a message as written: not empty, within the length limit, only known merge tags.
pub fn validate_message(message: &str) -> Result<Template, Error> {
    let chars = message.chars().count();
    if chars > super::message::MAX_CHARS {
        return Err(Error::invalid(
            "message_too_long",
            format!("The message is {chars} characters; the limit is {}.", super::message::MAX_CHARS),
        )
        .with_details(json!({"field": "message", "characters": chars, "limit": super::message::MAX_CHARS})));
    }
    // Refused whether or not links are tracked: see `links::private_target`.
    if let Some(url) = super::links::find(message).into_iter().map(|r| &message[r]).find(|u| super::links::private_target(u)) {
        return Err(Error::invalid(
            "private_link",
            format!("The link {url} points to this server's own network or a private one, which recipients' phones cannot open. Link to a public address."),
        )
        .with_details(json!({"field": "message", "url": url})));
    }
    Template::parse(message).map_err(|e| match e {
        TemplateError::Empty => Error::invalid("empty_message", "Write the message to send.").with_details(json!({"field": "message"})),
        TemplateError::UnknownTag(tag) => Error::invalid(
            "unknown_merge_tag",
            format!("{{{{{tag}}}}} is not a merge tag. Use {{{{first_name}}}}, {{{{last_name}}}} or {{{{discount_code}}}}."),
        )
        .with_details(json!({"field": "message", "tag": tag})),
        TemplateError::Unclosed => Error::invalid("invalid_merge_tag", "A merge tag is opened with {{ but never closed with }}.")
            .with_details(json!({"field": "message"})),
    })
}

pub fn validate_discount_code(code: &str) -> Result<String, Error> {
    let c = code.trim();
    if c.is_empty() || c.chars().count() > 50 || c.chars().any(char::is_whitespace) {
        return Err(Error::invalid("invalid_discount_code", "A discount code is 1 to 50 characters without spaces.")
            .with_details(json!({"field": "discount_code"})));
    }
    Ok(c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_json() {
        let a: Audience = serde_json::from_str(r#"{"kind":"tags","any":["VIP"]}"#).unwrap();
        assert_eq!(a.validate().unwrap(), Audience::Tags { any: vec!["vip".into()], all: vec![] });
        assert!(serde_json::from_str::<Audience>(r#"{"kind":"nobody"}"#).is_err());
        assert!(Audience::Tags { any: vec![], all: vec![] }.validate().is_err());
    }

    #[test]
    fn segment_rules() {
        let r: SegmentRules = serde_json::from_str(r#"{"match":"any","rules":[{"field":"tag","op":"has","value":"vip"},{"field":"created_at","op":"after","value":"2026-01-01T00:00:00Z"}]}"#).unwrap();
        assert_eq!(r.conditions().unwrap().len(), 2);
        let bad: SegmentRules = serde_json::from_str(r#"{"rules":[{"field":"shoe_size","op":"eq","value":"42"}]}"#).unwrap();
        assert_eq!(bad.conditions().unwrap_err().code, "invalid_segment");
    }

    #[test]
    fn messages() {
        assert_eq!(validate_message("Hi {{nickname}}").unwrap_err().code, "unknown_merge_tag");
        assert_eq!(validate_message("   ").unwrap_err().code, "empty_message");
        assert_eq!(validate_message(&"a".repeat(1601)).unwrap_err().code, "message_too_long");
        assert!(validate_message("Hi {{FIRST_NAME|there}}").is_ok());
        let e = validate_message("Sale at http://192.168.1.1/admin and https://shop.gr").unwrap_err();
        assert_eq!((e.code.as_ref(), e.details["url"].as_str()), ("private_link", Some("http://192.168.1.1/admin")));
        assert!(validate_message("Sale at https://shop.gr/?next=http://localhost").is_ok(), "a private address in a query is text");
    }

    use proptest::prelude::*;

    const KEYS: &[&str] = &["kind", "any", "all", "id", "match", "rules", "field", "op", "value"];

    fn rule() -> impl Strategy<Value = serde_json::Value> {
        let field =
            prop::sample::select(vec!["consent", "tag", "created_at", "updated_at", "first_name", "last_name", "email", "phone", "x"]);
        let op = prop::sample::select(vec![
            "eq",
            "neq",
            "has",
            "not_has",
            "before",
            "after",
            "contains",
            "starts_with",
            "is_empty",
            "not_empty",
            "lt",
        ]);
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            crate::domain::fuzz::nasty_text(30).prop_map(serde_json::Value::String),
            prop::sample::select(vec!["opted_in", "2026-01-31T00:00:00Z", "2026-01-31T00:00:00+ !:00", "%", "_", "\\", "VIP"])
                .prop_map(|s| json!(s)),
            crate::domain::fuzz::json_value(KEYS),
        ];
        (field, op, value).prop_map(|(f, o, v)| json!({"field": f, "op": o, "value": v}))
    }

    proptest! {
        /// Audience and segment JSON from anyone: parsed into the types or refused with a reason,
        /// and validated into conditions or refused with a reason naming the rule.
        #[test]
        fn audiences_and_rules_from_any_json(
            v in crate::domain::fuzz::json_value(KEYS),
            rules in prop::collection::vec(rule(), 0..24),
            any_match: bool,
        ) {
            if let Ok(a) = serde_json::from_value::<Audience>(v.clone()) {
                if let Ok(Audience::Tags { any, all }) = a.validate() {
                    prop_assert!(!(any.is_empty() && all.is_empty()));
                    prop_assert!(any.iter().chain(&all).all(|t| !t.is_empty() && *t == t.trim().to_lowercase()));
                }
            }
            if let Ok(r) = serde_json::from_value::<SegmentRules>(v) {
                let _ = r.conditions();
            }
            let typed = rules.iter().all(|r| r["value"].is_null() || r["value"].is_string());
            let doc = json!({"match": if any_match { "any" } else { "all" }, "rules": rules});
            match serde_json::from_value::<SegmentRules>(doc) {
                Ok(r) => match r.conditions() {
                    Ok(c) => prop_assert!((1..=20).contains(&c.len())),
                    Err(e) => prop_assert_eq!(e.code.as_ref(), "invalid_segment"),
                },
                Err(e) => prop_assert!(!typed, "{}", e),
            }
        }

        #[test]
        fn names_messages_and_codes_are_checked_not_crashed(s in crate::domain::fuzz::nasty_text(60)) {
            if let Ok(n) = validate_name(&s) {
                prop_assert_eq!(validate_name(&n).ok(), Some(n));
            }
            let _ = validate_message(&s);
            if let Ok(c) = validate_discount_code(&s) {
                prop_assert_eq!(validate_discount_code(&c).ok(), Some(c));
            }
        }
    }
}
