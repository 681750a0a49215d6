//! Delivery reports: the provider's vocabulary mapped to ours, the order in which a message's
//! delivery status may move, and the parsing of one report object as Mitto may send it (its v1.1
//! report payload is undocumented, so the field names integrations have seen are all accepted).

use super::time::parse_rfc3339;
use serde_json::Value;

/// A message's delivery status, in the order it may move: a report only replaces the current
/// status with one of higher rank. Final statuses rank above the intermediate ones, and
/// `Delivered` above every failure, so "delivered" never turns back into "sent" or "undelivered"
/// and the end state does not depend on the order reports arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    /// A value we do not know: kept with the report, never applied to the message.
    Other,
    Queued,
    Sent,
    Rejected,
    Expired,
    Undelivered,
    Delivered,
}

impl DeliveryStatus {
    /// Case-insensitive; Mitto's `Failed`/`Failure` and SMPP's spellings included.
    pub fn parse(raw: &str) -> DeliveryStatus {
        match raw.trim().to_ascii_lowercase().as_str() {
            "delivered" | "delivrd" => DeliveryStatus::Delivered,
            "undelivered" | "undeliv" | "undeliverable" | "failed" | "failure" => DeliveryStatus::Undelivered,
            "expired" => DeliveryStatus::Expired,
            "rejected" | "rejectd" => DeliveryStatus::Rejected,
            "sent" | "accepted" | "enroute" | "submitted" => DeliveryStatus::Sent,
            "queued" | "pending" | "scheduled" => DeliveryStatus::Queued,
            _ => DeliveryStatus::Other,
        }
    }

    /// The stored spelling (what `parse` reads back).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Other => "other",
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Expired => "expired",
            DeliveryStatus::Undelivered => "undelivered",
            DeliveryStatus::Delivered => "delivered",
        }
    }

    pub fn is_final(self) -> bool {
        self >= DeliveryStatus::Rejected
    }

    /// The campaign counter this status is counted in: `delivered`, or `undelivered` for every
    /// final failure (undelivered, expired, rejected); none while not final.
    pub fn counter(self) -> Option<&'static str> {
        match self {
            DeliveryStatus::Delivered => Some("delivered"),
            s if s.is_final() => Some("undelivered"),
            _ => None,
        }
    }
}

/// Whether a report of `new` at `new_at` replaces a message's current delivery status. Higher
/// rank wins; at equal rank the earlier report wins, so duplicates and reordering leave the same
/// state. `Other` never applies.
pub fn supersedes(new: DeliveryStatus, new_at: i64, current: Option<(DeliveryStatus, i64)>) -> bool {
    if new == DeliveryStatus::Other {
        return false;
    }
    match current {
        None => true,
        Some((cur, cur_at)) => new > cur || (new == cur && new_at < cur_at),
    }
}

/// The longest id, reference or status we keep; longer ones are not Mitto's.
const MAX_ID_LEN: usize = 128;
/// Error texts are cut to this many bytes.
const MAX_ERROR_LEN: usize = 500;

/// One delivery report, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The provider's message id (`messageId`, `id` or `msgid`).
    pub provider_id: Option<String>,
    /// What we sent as `reference` (our message id), when the report echoes it.
    pub reference: Option<String>,
    pub status: DeliveryStatus,
    /// The status as the provider spelled it.
    pub raw_status: String,
    /// When the provider says it happened (`updatedAt`, `timestamp` or `doneAt`), epoch ms.
    pub at: Option<i64>,
    /// `description` or `error`.
    pub error: Option<String>,
}

impl Report {
    /// Our message id named by the reference, when it is one of ours (a positive integer).
    pub fn message_id(&self) -> Option<i64> {
        self.reference.as_deref().and_then(|r| r.trim().parse::<i64>().ok()).filter(|id| *id > 0)
    }
}

/// Parses one report object. `Err` says what is wrong, for a 400 that names the field.
pub fn parse_report(v: &Value) -> Result<Report, String> {
    let Some(obj) = v.as_object() else {
        return Err("each report must be a JSON object".into());
    };
    let first = |names: &[&'static str]| first_of(obj, names);
    let text = |names: &[&'static str]| -> Result<Option<String>, String> {
        match first(names) {
            None => Ok(None),
            Some((_, Value::String(s))) if s.trim().is_empty() => Ok(None),
            Some((n, Value::String(s))) if s.len() > MAX_ID_LEN => Err(format!("{n} is longer than {MAX_ID_LEN} characters")),
            Some((_, Value::String(s))) => Ok(Some(s.trim().to_string())),
            Some((_, Value::Number(x))) => Ok(Some(x.to_string())),
            Some((n, _)) => Err(format!("{n} must be a string")),
        }
    };
    let provider_id = text(&["messageId", "id", "msgid"])?;
    let reference = text(&["reference"])?;
    if provider_id.is_none() && reference.is_none() {
        return Err("a report needs messageId (or id, msgid) or reference".into());
    }
    let Some(raw_status) = text(&["deliveryStatus", "status"])? else {
        return Err("a report needs deliveryStatus (or status)".into());
    };
    let at = match first(&["updatedAt", "timestamp", "doneAt"]) {
        None => None,
        Some((n, v)) => Some(parse_time(v).ok_or_else(|| format!("{n} is not a time (RFC 3339 or epoch seconds or milliseconds)"))?),
    };
    let error = match first(&["description", "error"]) {
        None => None,
        Some((_, Value::String(s))) => Some(s.clone()),
        Some((_, Value::Object(o))) => o.get("message").or_else(|| o.get("description")).and_then(Value::as_str).map(str::to_string),
        Some((_, other)) => Some(other.to_string()),
    }
    .filter(|e| !e.trim().is_empty())
    .map(|e| truncate(e.trim(), MAX_ERROR_LEN));
    Ok(Report { provider_id, reference, status: DeliveryStatus::parse(&raw_status), raw_status, at, error })
}

/// The first of `names` present (and not null) in `obj`, with its name.
fn first_of<'a>(obj: &'a serde_json::Map<String, Value>, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
    names.iter().find_map(|n| obj.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
}

/// RFC 3339 (Mitto writes 7 fractional digits and sometimes no offset: UTC then), or a number of
/// epoch seconds or milliseconds.
fn parse_time(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            parse_rfc3339(s).or_else(|| parse_rfc3339(&format!("{s}Z"))).or_else(|| s.parse::<i64>().ok().map(epoch_ms))
        }
        Value::Number(n) => n.as_i64().map(epoch_ms),
        _ => None,
    }
}

/// Numbers below 10^11 are seconds (until the year 5138), others milliseconds.
fn epoch_ms(n: i64) -> i64 {
    // `unsigned_abs`: `abs` of the smallest i64 overflowed.
    if n.unsigned_abs() < 100_000_000_000 { n * 1000 } else { n }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use serde_json::json;

    #[test]
    fn statuses_in_any_case() {
        for (raw, want) in [
            ("Delivered", DeliveryStatus::Delivered),
            ("DELIVERED", DeliveryStatus::Delivered),
            ("sent", DeliveryStatus::Sent),
            ("Queued", DeliveryStatus::Queued),
            ("Failed", DeliveryStatus::Undelivered),
            ("failure", DeliveryStatus::Undelivered),
            ("Undelivered", DeliveryStatus::Undelivered),
            ("Expired", DeliveryStatus::Expired),
            ("REJECTED", DeliveryStatus::Rejected),
            ("Teleported", DeliveryStatus::Other),
        ] {
            assert_eq!(DeliveryStatus::parse(raw), want, "{raw}");
            if want != DeliveryStatus::Other {
                assert_eq!(DeliveryStatus::parse(want.as_str()), want);
            }
        }
    }

    #[test]
    fn status_only_moves_forward() {
        use DeliveryStatus::*;
        assert!(supersedes(Sent, 5, None));
        assert!(supersedes(Delivered, 5, Some((Sent, 1))));
        assert!(!supersedes(Sent, 9, Some((Delivered, 1))), "delivered never turns back into sent");
        assert!(!supersedes(Undelivered, 9, Some((Delivered, 1))));
        assert!(supersedes(Delivered, 9, Some((Undelivered, 1))));
        assert!(!supersedes(Other, 9, None), "unknown values are kept but never applied");
        assert!(!supersedes(Delivered, 5, Some((Delivered, 5))), "a duplicate changes nothing");
        assert!(supersedes(Delivered, 4, Some((Delivered, 5))), "the earliest of equal reports wins");
        assert!(!Sent.is_final() && !Queued.is_final() && Expired.is_final() && Delivered.is_final());
        assert_eq!((Delivered.counter(), Rejected.counter(), Sent.counter()), (Some("delivered"), Some("undelivered"), None));
    }

    #[test]
    fn order_of_arrival_does_not_matter() {
        use DeliveryStatus::*;
        let reports = [(Queued, 1), (Sent, 2), (Undelivered, 3), (Delivered, 4), (Delivered, 6), (Sent, 7)];
        let fold = |order: &[usize]| {
            let mut cur = None;
            for &i in order {
                let (s, at) = reports[i];
                if supersedes(s, at, cur) {
                    cur = Some((s, at));
                }
            }
            cur
        };
        let want = fold(&[0, 1, 2, 3, 4, 5]);
        assert_eq!(want, Some((Delivered, 4)));
        for order in [[5, 4, 3, 2, 1, 0], [2, 5, 0, 4, 1, 3], [4, 4, 3, 3, 0, 5]] {
            let mut with_all = order.to_vec();
            with_all.extend(0..6);
            assert_eq!(fold(&with_all), want, "{order:?}");
        }
    }

    #[test]
    fn field_aliases() {
        let r = parse_report(&json!({"messageId": "01ABC", "deliveryStatus": "Delivered", "updatedAt": "2026-01-02T03:04:05.1234567Z",
            "description": "ok", "reference": "42"}))
        .unwrap();
        assert_eq!(r.provider_id.as_deref(), Some("01ABC"));
        assert_eq!((r.status, r.raw_status.as_str()), (DeliveryStatus::Delivered, "Delivered"));
        assert_eq!(r.at, parse_rfc3339("2026-01-02T03:04:05.123Z"));
        assert_eq!((r.error.as_deref(), r.message_id()), (Some("ok"), Some(42)));

        let r = parse_report(&json!({"msgid": 77, "status": "failure", "doneAt": "2026-01-02T03:04:05", "error": {"message": "absent"}}))
            .unwrap();
        assert_eq!((r.provider_id.as_deref(), r.status), (Some("77"), DeliveryStatus::Undelivered));
        assert_eq!(r.at, parse_rfc3339("2026-01-02T03:04:05Z"), "no offset means UTC");
        assert_eq!((r.error.as_deref(), r.message_id()), (Some("absent"), None));

        let r = parse_report(&json!({"id": "x", "status": "sent", "timestamp": 1_700_000_000})).unwrap();
        assert_eq!(r.at, Some(1_700_000_000_000));
        let r = parse_report(&json!({"reference": "9", "status": "Sent", "timestamp": 1_700_000_000_123i64})).unwrap();
        assert_eq!((r.at, r.provider_id.as_deref(), r.message_id()), (Some(1_700_000_000_123), None, Some(9)));
        assert_eq!(parse_report(&json!({"id": "x", "status": "Teleported"})).unwrap().status, DeliveryStatus::Other);
    }

    #[test]
    fn malformed_reports() {
        for bad in [
            json!("Delivered"),
            json!({"deliveryStatus": "Delivered"}),
            json!({"messageId": "x"}),
            json!({"messageId": "x", "deliveryStatus": ""}),
            json!({"messageId": ["x"], "deliveryStatus": "Delivered"}),
            json!({"messageId": "x", "deliveryStatus": 3.5e300, "updatedAt": "soon"}),
            json!({"messageId": "x", "deliveryStatus": "Delivered", "updatedAt": "yesterday"}),
            json!({"messageId": "x".repeat(200), "deliveryStatus": "Delivered"}),
        ] {
            assert!(parse_report(&bad).is_err(), "{bad}");
        }
    }

    /// Found by fuzzing: the smallest epoch number overflowed `abs` (a panic: a 500 from the webhook).
    #[test]
    fn the_smallest_epoch_number_is_a_time_not_a_crash() {
        for t in [json!(i64::MIN), json!(i64::MIN.to_string()), json!(i64::MAX)] {
            let _ = parse_report(&json!({"messageId": "x", "deliveryStatus": "Delivered", "timestamp": t}));
        }
    }

    const FIELDS: &[&str] = &[
        "messageId",
        "id",
        "msgid",
        "reference",
        "deliveryStatus",
        "status",
        "updatedAt",
        "timestamp",
        "doneAt",
        "description",
        "error",
        "message",
    ];

    fn status() -> impl Strategy<Value = DeliveryStatus> {
        use DeliveryStatus::*;
        prop::sample::select(vec![Other, Queued, Sent, Rejected, Expired, Undelivered, Delivered])
    }

    proptest! {
        /// Whatever the provider (or someone holding its secret) posts, parsing answers.
        #[test]
        fn any_json_is_a_report_or_a_reason(v in crate::domain::fuzz::json_value(FIELDS)) {
            if let Ok(r) = parse_report(&v) {
                prop_assert!(r.provider_id.is_some() || r.reference.is_some());
                prop_assert!(r.error.as_ref().is_none_or(|e| e.len() <= MAX_ERROR_LEN));
            }
        }

        /// A report as Mitto writes one reads back as what it says.
        #[test]
        fn a_written_report_reads_back(
            provider_id in "[A-Za-z0-9-]{1,40}",
            reference in proptest::option::of(1i64..i64::MAX),
            s in status().prop_filter("a known status", |s| *s != DeliveryStatus::Other),
            at in 0i64..253_402_214_399_999,
            as_number: bool,
            error in proptest::option::of(crate::domain::fuzz::nasty_text(60)),
        ) {
            let mut v = json!({"messageId": provider_id, "deliveryStatus": s.as_str()});
            v["updatedAt"] = if as_number { json!(at.max(100_000_000_000)) } else { json!(crate::domain::time::rfc3339(at)) };
            if let Some(r) = reference {
                v["reference"] = json!(r.to_string());
            }
            if let Some(e) = &error {
                v["description"] = json!(e);
            }
            let r = parse_report(&v).map_err(TestCaseError::fail)?;
            prop_assert_eq!(r.provider_id.as_deref(), Some(provider_id.as_str()));
            prop_assert_eq!(r.message_id(), reference);
            prop_assert_eq!(r.status, s);
            prop_assert_eq!(r.at, Some(if as_number { at.max(100_000_000_000) } else { at }));
            let want_error = error.as_deref().map(str::trim).filter(|e| !e.is_empty()).map(|e| truncate(e, MAX_ERROR_LEN));
            prop_assert_eq!(r.error, want_error);
        }

        #[test]
        fn every_status_reads_back_in_any_case(s in status(), upper: bool) {
            let spelled = if upper { s.as_str().to_uppercase() } else { s.as_str().to_string() };
            prop_assert_eq!(DeliveryStatus::parse(&format!(" {spelled} ")), s);
        }

        /// The end state is the best report, whatever order and however often reports arrive.
        #[test]
        fn the_end_state_does_not_depend_on_arrival(
            reports in prop::collection::vec((status(), 0i64..20), 1..12),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let fold = |seq: &mut dyn Iterator<Item = (DeliveryStatus, i64)>| {
                seq.fold(None, |cur, (s, at)| if supersedes(s, at, cur) { Some((s, at)) } else { cur })
            };
            let want = fold(&mut reports.iter().copied());
            // Any arrival order, with duplicates, covering every report at least once.
            let mut shuffled: Vec<_> = order.iter().map(|i| reports[i.index(reports.len())]).collect();
            shuffled.extend(reports.iter().rev().copied());
            prop_assert_eq!(fold(&mut shuffled.into_iter()), want);
            let best = reports.iter().filter(|r| r.0 != DeliveryStatus::Other).max_by_key(|(s, at)| (*s, -at)).copied();
            prop_assert_eq!(want, best);
        }
    }
}
