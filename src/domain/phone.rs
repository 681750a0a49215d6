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
    greek_mobile(raw.trim(), country).map_or_else(|| parse_full(raw, country), Ok)
}

/// The common case of a Greek store without libphonenumber: a Greek mobile (`69` and 8 digits,
/// every one of them a valid mobile number in libphonenumber's metadata) written with `+30`, or —
/// for a store in Greece — nationally or with `0030`, digits separated by spaces, dashes, dots or
/// parentheses. The answer is exactly libphonenumber's (tests compare the two on many spellings);
/// anything else goes through libphonenumber, which costs ~8 µs a number: the largest single cost
/// of a CSV import.
fn greek_mobile(trimmed: &str, country: Id) -> Option<Phone> {
    let mut digits = [0u8; 14];
    let mut n = 0;
    let mut separators = 0;
    let bytes = trimmed.as_bytes();
    let plus = bytes.first() == Some(&b'+');
    for b in &bytes[usize::from(plus)..] {
        match b {
            b'0'..=b'9' if n < digits.len() => {
                digits[n] = *b;
                n += 1;
            }
            b' ' | b'-' | b'.' | b'(' | b')' => separators += 1,
            _ => return None,
        }
    }
    // libphonenumber refuses "+306936709-292" (a separator inside the number, none after the
    // country code) while it reads "+30 693670-9292" and "+306936709292": only those two shapes.
    let plus_shape_ok = separators == 0 || (bytes.get(1..3) == Some(b"30") && matches!(bytes.get(3), Some(b' ' | b'-' | b'.')));
    let national = match (plus, &digits[..n]) {
        (true, [b'3', b'0', rest @ ..]) if plus_shape_ok => rest,
        (false, [b'0', b'0', b'3', b'0', rest @ ..]) if country == Id::GR => rest,
        (false, rest) if country == Id::GR => rest,
        _ => return None,
    };
    if national.len() != 10 || !national.starts_with(b"69") {
        return None;
    }
    let mut e164 = String::with_capacity(13);
    e164.push_str("+30");
    e164.extend(national.iter().map(|d| *d as char));
    Some(Phone { e164, mobile: true })
}

fn parse_full(raw: &str, country: Id) -> Result<Phone, PhoneError> {
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
    // A number written with its country code is read without the store's country, so an E.164
    // number reads back as itself whatever the store (libphonenumber's validity of short numbers
    // otherwise depended on it).
    let default = if trimmed.starts_with('+') { None } else { Some(country) };
    let parsed = phonenumber::parse(default, trimmed)
        .map_err(|_| PhoneError { reason: "unparsable", message: format!("\"{trimmed}\" is not a phone number we can read.") })?;
    if !phonenumber::is_valid(&parsed) {
        return Err(PhoneError {
            reason: "invalid_number",
            message: format!("\"{trimmed}\" is not a valid phone number for its country."),
        });
    }
    let e164 = parsed.format().mode(Mode::E164).to_string();
    // E.164 allows 15 digits; libphonenumber's metadata accepts some longer German numbers, which
    // no provider would deliver to and which did not read back as themselves.
    if e164.len() > 16 {
        return Err(PhoneError { reason: "too_long", message: format!("The phone number \"{trimmed}\" is too long.") });
    }
    let mobile =
        matches!(parsed.number_type(&phonenumber::metadata::DATABASE), PhoneNumberType::Mobile | PhoneNumberType::FixedLineOrMobile);
    Ok(Phone { e164, mobile })
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

    /// The fast path answers exactly what libphonenumber answers, on every spelling people use
    /// and on odd ones (separators anywhere, leading or trailing punctuation, other countries).
    #[test]
    fn greek_mobile_fast_path_agrees_with_libphonenumber() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut next = |n: u64| rng.random_range(0..n);
        let prefixes = [
            "", "", "+30", "+30 ", "+30 ", "0030", "0030 ", "0030-", "+ 30", "+30-", "+30.", "+30(", "30", "+3", "0", "00", "+", "0030 0",
            "+44 ",
        ];
        let seps = ["", "", "", " ", "-", ".", "(", ")", "  ", " - "];
        let countries = [Id::GR, Id::GR, Id::GR, Id::CY, Id::DE, Id::US];
        let mut fast = 0;
        for _ in 0..50_000 {
            let national: String = match next(6) {
                0 => format!("6{}{:08}", next(10), next(100_000_000)),
                1 => format!("2{:09}", next(1_000_000_000)),
                2 => format!("69{:0w$}", next(10_000_000), w = 7),
                3 => format!("69{:09}", next(1_000_000_000)),
                _ => format!("69{:08}", next(100_000_000)),
            };
            let mut raw = String::from(prefixes[next(prefixes.len() as u64) as usize]);
            for (i, d) in national.chars().enumerate() {
                if i > 0 && next(3) == 0 {
                    raw.push_str(seps[next(seps.len() as u64) as usize]);
                }
                raw.push(d);
            }
            if next(8) == 0 {
                raw.insert_str(0, seps[next(seps.len() as u64) as usize]);
            }
            if next(8) == 0 {
                raw.push_str(seps[next(seps.len() as u64) as usize]);
            }
            let country = countries[next(countries.len() as u64) as usize];
            if let Some(p) = greek_mobile(raw.trim(), country) {
                fast += 1;
                assert_eq!(Ok(p), parse_full(&raw, country), "{raw:?} in {country:?}");
            }
        }
        assert!(fast > 4_000, "the fast path is taken often enough to be tested: {fast}");
        for (raw, country) in
            [("6912345678", Id::GR), ("+30 691 234 5678", Id::DE), ("0030 6912345678", Id::GR), ("(691) 234-5678", Id::GR)]
        {
            assert!(greek_mobile(raw, country).is_some(), "{raw}");
        }
        // Left to libphonenumber: other countries' national and 00 forms, landlines, a plus
        // inside the number, letters, wrong lengths.
        for (raw, country) in [
            ("6912345678", Id::CY),
            ("0030 6912345678", Id::US),
            ("(+30) 6912345678", Id::GR),
            ("2101234567", Id::GR),
            ("69+12345678", Id::GR),
            ("69123abc78", Id::GR),
            ("691234567", Id::GR),
            ("306912345678", Id::GR),
        ] {
            assert!(greek_mobile(raw, country).is_none(), "{raw}");
        }
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

    /// Found by fuzzing: a short German number read in Germany did not read back in the US.
    #[test]
    fn an_e164_number_reads_alike_in_every_country() {
        let p = parse("164000", Id::DE).unwrap();
        for c in [Id::DE, Id::US, Id::GR] {
            assert_eq!(parse(&p.e164, c), Ok(p.clone()), "{c:?}");
        }
    }

    /// Found by fuzzing: libphonenumber calls this 16-digit German number valid; E.164 has 15.
    #[test]
    fn numbers_longer_than_e164_allows_are_refused() {
        assert_eq!(gr("+49 20100000000000").unwrap_err().reason, "too_long");
        assert_eq!(parse("020100000000000", Id::DE).unwrap_err().reason, "too_long");
        assert_eq!(gr("+49 201 0000000000").map(|p| p.e164), Ok("+492010000000000".to_string()));
    }

    use proptest::prelude::*;

    fn country() -> impl Strategy<Value = Id> {
        prop::sample::select(vec![Id::GR, Id::CY, Id::DE, Id::US, Id::GB, Id::FR, Id::IT, Id::BG, Id::AL, Id::RO])
    }

    /// Numbers as people write them: a country prefix or none, digits, separators anywhere.
    fn written_number() -> impl Strategy<Value = String> {
        let prefix = prop::sample::select(vec!["", "", "+30", "+30 ", "0030", "+357", "+49 ", "+1 ", "+44", "00", "0", "+", "(+30) "]);
        let digit_or_sep =
            prop_oneof![6 => prop::char::range('0', '9'), 1 => prop::sample::select(vec![' ', '-', '.', '(', ')', '/', '\u{a0}'])];
        (prefix, prop::collection::vec(digit_or_sep, 0..20)).prop_map(|(p, rest)| format!("{p}{}", rest.into_iter().collect::<String>()))
    }

    proptest! {
        #[test]
        fn any_text_is_a_number_or_a_reason(raw in crate::domain::fuzz::nasty_text(30), c in country()) {
            match parse(&raw, c) {
                Ok(p) => prop_assert!(p.e164.starts_with('+') && p.e164[1..].bytes().all(|b| b.is_ascii_digit()), "{:?}", p),
                Err(e) => prop_assert!(!e.reason.is_empty() && !e.message.is_empty()),
            }
        }

        /// Normalising is idempotent: an E.164 number we stored reads back as itself, whatever
        /// the store's country, and the same for the fast path and libphonenumber.
        #[test]
        fn normalising_twice_changes_nothing(raw in written_number(), c in country(), again in country()) {
            if let Ok(p) = parse(&raw, c) {
                prop_assert!(p.e164.len() <= 16, "{:?}", p);
                prop_assert_eq!(parse(&p.e164, again), Ok(p.clone()), "{:?} in {:?}", raw, c);
                prop_assert_eq!(parse_full(&p.e164, again), Ok(p), "{:?} in {:?}", raw, c);
            }
        }
    }
}
