//! Opting out after the send: what an inbound SMS asks for (STOP, START, HELP and a store's own
//! keywords) and how a recipient's number is shown on the unsubscribe page.

use super::error::Error;
use super::sms::greek_to_gsm;

/// What an inbound message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    OptOut,
    OptIn,
    Help,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::OptOut => "opt_out",
            Action::OptIn => "opt_in",
            Action::Help => "help",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "opt_out" => Some(Action::OptOut),
            "opt_in" => Some(Action::OptIn),
            "help" => Some(Action::Help),
            _ => None,
        }
    }
}

/// The built-in keywords, already folded. ΣΤΟΠ and ΔΙΑΓΡΑΦΗ fold to their Latin look-alike
/// spellings (ΣTOΠ, ΔIAΓPAΦH), so a reply typed either way matches.
const OPT_OUT: [&str; 4] = ["STOP", "UNSUBSCRIBE", "ΣTOΠ", "ΔIAΓPAΦH"];
const OPT_IN: [&str; 1] = ["START"];
const HELP: [&str; 1] = ["HELP"];

/// The form keywords are compared in: Greek as upper-case, unaccented GSM look-alikes (the same
/// mapping as the Greek GSM option, so "στοπ", "ΣΤΟΠ" and "ΣTOΠ" are one word), every other
/// letter upper case, combining accents dropped, inner whitespace collapsed, and the punctuation
/// people add around a word ("Stop!", "stop.") trimmed.
pub fn fold(text: &str) -> String {
    // Upper case first, then the Greek mapping, then accents dropped: upper-casing makes Greek
    // ("ͅ" → "Ι") and accents ("ǰ" → "J̌"), so in any other order a folded word did not fold to
    // itself (`classify` folds the first word of a folded text again). Braces are spaces: the
    // mapping copies `{{…}}` as a merge tag, which a reply's "{{στοπ}}" is not.
    let upper: String = text.chars().map(|c| if matches!(c, '{' | '}') { ' ' } else { c }).flat_map(char::to_uppercase).collect();
    let upper: String = greek_to_gsm(&upper).chars().filter(|c| !('\u{0300}'..='\u{036F}').contains(c)).collect();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let joined = words.join(" ");
    joined.trim_matches(|c: char| !c.is_alphanumeric()).to_string()
}

/// What an inbound text asks for, given the store's own keywords (folded, with their action).
/// An opt-out keyword counts as the whole message or as its first word ("Stop sending me these"):
/// an opt-out must be honoured when it is reasonably clear. Opting back in and help need the
/// keyword alone, so a sentence that merely starts with "Start" never re-subscribes anyone.
/// When a text would match both, opting out wins.
pub fn classify(text: &str, own: &[(String, Action)]) -> Option<Action> {
    let whole = fold(text);
    if whole.is_empty() {
        return None;
    }
    let first = fold(whole.split(' ').next().unwrap_or(""));
    let is = |action: Action, builtin: &[&str], w: &str| builtin.contains(&w) || own.iter().any(|(k, a)| *a == action && k == w);
    if is(Action::OptOut, &OPT_OUT, &whole) || is(Action::OptOut, &OPT_OUT, &first) {
        Some(Action::OptOut)
    } else if is(Action::OptIn, &OPT_IN, &whole) {
        Some(Action::OptIn)
    } else if is(Action::Help, &HELP, &whole) {
        Some(Action::Help)
    } else {
        None
    }
}

pub const MAX_KEYWORDS: usize = 20;
const MAX_KEYWORD_CHARS: usize = 30;

/// A store's own keyword, folded; it may not be empty, long, or a built-in keyword of the other
/// action (a store cannot make "STOP" opt people in).
pub fn validate_keyword(raw: &str, action: Action) -> Result<String, Error> {
    let k = fold(raw);
    let field = serde_json::json!({"field": action.as_str()});
    if k.is_empty() || k.chars().count() > MAX_KEYWORD_CHARS {
        return Err(Error::invalid(
            "invalid_keyword",
            format!("\"{raw}\" cannot be a keyword: use 1 to {MAX_KEYWORD_CHARS} letters or digits."),
        )
        .with_details(field));
    }
    let builtin_elsewhere = match action {
        Action::OptOut => OPT_IN.contains(&k.as_str()) || HELP.contains(&k.as_str()),
        Action::OptIn | Action::Help => OPT_OUT.contains(&k.as_str()),
    };
    if builtin_elsewhere {
        return Err(Error::invalid("invalid_keyword", format!("\"{raw}\" is a built-in keyword with another meaning.")).with_details(field));
    }
    Ok(k)
}

/// A number as the unsubscribe page shows it: enough to recognise one's own (the country code and
/// the last three digits), not enough to learn someone else's from a forwarded link.
pub fn mask_phone(e164: &str) -> String {
    let chars: Vec<char> = e164.chars().collect();
    let (head, tail) = (3.min(chars.len()), 3.min(chars.len().saturating_sub(3)));
    let hidden = chars.len() - head - tail;
    chars[..head].iter().chain(std::iter::repeat_n(&'•', hidden)).chain(&chars[chars.len() - tail..]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_keywords_in_any_case_and_accent() {
        for text in
            ["STOP", "stop", " Stop! ", "Stop.", "unsubscribe", "ΣΤΟΠ", "στοπ", "Στόπ", "ΔΙΑΓΡΑΦΗ", "διαγραφή", "Διαγραφη", "ΔIAΓPAΦH"]
        {
            assert_eq!(classify(text, &[]), Some(Action::OptOut), "{text:?}");
        }
        assert_eq!(classify("Stop sending me these", &[]), Some(Action::OptOut));
        assert_eq!(classify("start", &[]), Some(Action::OptIn));
        assert_eq!(classify("Start again tomorrow", &[]), None, "opt-in needs the keyword alone");
        assert_eq!(classify("help", &[]), Some(Action::Help));
        assert_eq!(classify("Thanks!", &[]), None);
        assert_eq!(classify("", &[]), None);
        assert_eq!(classify("stopwatch", &[]), None);
    }

    #[test]
    fn a_stores_own_keywords() {
        let own = vec![(validate_keyword("Αρκετά", Action::OptOut).unwrap(), Action::OptOut), (fold("ναι"), Action::OptIn)];
        assert_eq!(classify("αρκετα", &own), Some(Action::OptOut));
        assert_eq!(classify("ΑΡΚΕΤΆ!!", &own), Some(Action::OptOut));
        assert_eq!(classify("Ναι", &own), Some(Action::OptIn));
        assert_eq!(classify("αρκετα", &[]), None, "only that store's keywords");
        assert!(validate_keyword("STOP", Action::OptIn).is_err());
        assert!(validate_keyword("start", Action::OptOut).is_err());
        assert!(validate_keyword("  !! ", Action::OptOut).is_err());
    }

    /// Found by fuzzing: "ǰ" upper-cases to J and a combining caron, which folding kept, so a
    /// store's keyword with it did not match as the first word of a reply (folded twice).
    #[test]
    fn a_keyword_that_upper_cases_to_an_accent_matches_as_the_first_word() {
        let own = vec![(validate_keyword("ǰa", Action::OptOut).unwrap(), Action::OptOut)];
        assert_eq!(classify("ǰa", &own), Some(Action::OptOut));
        assert_eq!(classify("ǰa please", &own), Some(Action::OptOut));
        let own = vec![(validate_keyword("x\u{345}", Action::OptOut).unwrap(), Action::OptOut)];
        assert_eq!(classify("x\u{345} please", &own), Some(Action::OptOut));
        assert_eq!(classify("{{στοπ}}", &[]), Some(Action::OptOut));
    }

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("+306912345678"), "+30•••••••678");
        assert_eq!(mask_phone("+3069"), "+3069");
        assert_eq!(mask_phone(""), "");
    }

    use proptest::prelude::*;

    /// A keyword with what people add around it: other case, accents, spaces, punctuation.
    fn spelled(word: &'static str) -> impl Strategy<Value = String> {
        (any::<bool>(), "[ !.?]{0,3}", "[ !.?]{0,3}").prop_map(move |(lower, pre, post)| {
            let w = if lower { word.to_lowercase() } else { word.to_string() };
            format!("{pre}{w}{post}")
        })
    }

    proptest! {
        #[test]
        fn any_reply_is_classified_without_panicking(text in crate::domain::fuzz::nasty_text(60), own in crate::domain::fuzz::nasty_text(12)) {
            let own = validate_keyword(&own, Action::OptOut).map(|k| vec![(k, Action::OptOut)]).unwrap_or_default();
            let _ = classify(&text, &own);
        }

        /// Folding is a normal form: a folded keyword folds to itself, so a stored keyword
        /// matches the reply it came from.
        #[test]
        fn folding_is_idempotent(text in crate::domain::fuzz::nasty_text(40)) {
            let once = fold(&text);
            prop_assert_eq!(fold(&once), once.clone(), "{:?}", text);
        }

        #[test]
        fn a_stores_keyword_matches_the_reply_it_came_from(word in crate::domain::fuzz::nasty_text(20)) {
            if let Ok(k) = validate_keyword(&word, Action::OptOut) {
                prop_assert_eq!(classify(&word, &[(k, Action::OptOut)]), Some(Action::OptOut), "{:?}", word);
            }
        }

        #[test]
        fn builtin_opt_outs_in_any_spelling(text in prop_oneof![spelled("STOP"), spelled("ΣΤΌΠ"), spelled("Διαγραφή"), spelled("unsubscribe")], tail in "( [a-z ]{0,20})?") {
            prop_assert_eq!(classify(&format!("{text}{tail}"), &[]), Some(Action::OptOut));
        }

        #[test]
        fn masking_keeps_the_length_and_hides_the_middle(e164 in "\\+[0-9]{0,15}") {
            let masked = mask_phone(&e164);
            prop_assert_eq!(masked.chars().count(), e164.chars().count());
            prop_assert!(masked.chars().filter(char::is_ascii_digit).count() <= 5);
        }
    }
}
