//! Composing the exact text each recipient gets: template + merge values + (optional Greek GSM
//! mapping) + the unsubscribe footer, then its encoding and segment count. Preview and send both
//! call `Composer::compose`, so a send can never cost more than its preview said.

use super::render::{Language, Template, TemplateError, Vars, unsubscribe_footer};
use super::sms::{self, SegmentInfo};
use std::borrow::Cow;

/// The most a rendered message body may be, in characters (the footer comes on top).
pub const MAX_CHARS: usize = 1600;
/// Length of the per-recipient unsubscribe code (see `unsubscribe`).
pub const UNSUBSCRIBE_CODE_LEN: usize = super::unsubscribe::CODE_LEN;

pub struct Composer {
    template: Template,
    greek_gsm: bool,
    discount_code: Option<String>,
    footer_prefix: String,
}

impl Composer {
    pub fn new(
        message: &str,
        greek_gsm: bool,
        discount_code: Option<&str>,
        lang: Language,
        public_url: &str,
    ) -> Result<Composer, TemplateError> {
        // The mapping skips merge tags and URLs, so it is safe on the template itself.
        let source = if greek_gsm { sms::greek_to_gsm(message) } else { message.to_string() };
        let template = Template::parse(&source)?;
        let footer_prefix = unsubscribe_footer(lang, &format!("{}/u/", public_url.trim_end_matches('/')));
        Ok(Composer { template, greek_gsm, discount_code: discount_code.map(str::to_string), footer_prefix })
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Renders the message body (without footer) into `out`; returns its length in characters.
    pub fn body(&self, first_name: Option<&str>, last_name: Option<&str>, out: &mut String) -> usize {
        self.render_body(first_name, last_name, out);
        out.chars().count()
    }

    /// Runs per recipient, so no allocation unless the Greek GSM mapping needs one.
    fn render_body(&self, first_name: Option<&str>, last_name: Option<&str>, out: &mut String) {
        out.clear();
        let greek = self.greek_gsm;
        let map = |v| mapped(greek, v);
        let (first, last) = (map(first_name), map(last_name));
        let vars = Vars { first_name: first.as_deref(), last_name: last.as_deref(), discount_code: self.discount_code.as_deref() };
        self.template.render(&vars, out);
    }

    /// Renders the full text for one recipient into `out` and counts its segments.
    /// Returns `None` when the body is longer than `MAX_CHARS`.
    pub fn compose(
        &self,
        first_name: Option<&str>,
        last_name: Option<&str>,
        unsubscribe_code: &str,
        out: &mut String,
    ) -> Option<SegmentInfo> {
        self.render_body(first_name, last_name, out);
        // A char is at least one byte, so only a long body needs counting.
        if out.len() > MAX_CHARS && out.chars().count() > MAX_CHARS {
            return None;
        }
        out.push_str(&self.footer_prefix);
        out.push_str(unsubscribe_code);
        Some(sms::analyze(out))
    }
}

/// A merge value as sent: mapped to GSM look-alikes when the Greek option is on, else as is.
fn mapped(greek_gsm: bool, v: Option<&str>) -> Option<Cow<'_, str>> {
    v.map(|v| if greek_gsm { Cow::Owned(sms::greek_to_gsm(v)) } else { Cow::Borrowed(v) })
}

/// A stand-in code for previews: same length and character class as a real one, so the
/// segment count is identical.
pub fn preview_code() -> String {
    "x".repeat(UNSUBSCRIBE_CODE_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_and_merge_values_are_counted() {
        let c = Composer::new("Hi {{first_name|there}}, 20% off!", false, None, Language::En, "https://s.example").unwrap();
        let mut out = String::new();
        let info = c.compose(Some("Anna"), None, "abcdefghij", &mut out).unwrap();
        assert_eq!(out, "Hi Anna, 20% off!\nStop: https://s.example/u/abcdefghij");
        assert_eq!(info.segments, 1);
        let info2 = c.compose(None, None, &preview_code(), &mut out).unwrap();
        assert!(out.starts_with("Hi there,"));
        assert_eq!(info2.encoding, sms::Encoding::Gsm7);
    }

    #[test]
    fn greek_gsm_maps_text_and_names_but_not_codes() {
        let c =
            Composer::new("Γεια σου {{first_name}}! Κωδικός {{discount_code}}", true, Some("abc-ΧΥ"), Language::El, "https://s.example")
                .unwrap();
        let mut out = String::new();
        c.body(Some("Μαρία"), None, &mut out);
        assert!(out.starts_with("ΓEIA ΣOY MAPIA! KΩΔIKOΣ abc-ΧΥ"), "{out}");
    }

    #[test]
    fn too_long_bodies_are_refused() {
        let c = Composer::new("{{first_name}}", false, None, Language::En, "https://s.example").unwrap();
        let long = "a".repeat(MAX_CHARS + 1);
        assert!(c.compose(Some(&long), None, "x", &mut String::new()).is_none());
    }
}
