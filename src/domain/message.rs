//! Composing the exact text each recipient gets: template + merge values + (optional Greek GSM
//! mapping) + tracked links + the unsubscribe footer, then its encoding and segment count. Preview and send both
//! call `Composer::compose`, so a send can never cost more than its preview said.

use super::links::{self, MAX_LINKS};
use super::render::{Language, Template, TemplateError, Vars, unsubscribe_footer};
use super::sms::{self, SegmentInfo};
use super::unsubscribe::CodeKey;
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
    /// `{public_url}/l/`: where every tracked link of the message points.
    link_prefix: String,
}

/// The codes a rendered message carries.
#[derive(Debug, Clone, Copy)]
pub enum Codes<'a> {
    /// Previews and cost: stand-ins of the real codes' length and alphabet, so the segments are
    /// exactly those of the real message.
    Preview,
    /// Message `id`'s own codes under the installation's key: its unsubscribe code and one link
    /// code per tracked link.
    Message(&'a CodeKey, i64),
}

/// The campaign message as a template, with its URLs made tracked links: the one parse behind
/// rendering, preview, and resolving a click to its address.
fn tracked_template(message: &str, greek_gsm: bool) -> Result<Template, TemplateError> {
    // The mapping skips merge tags and URLs, so it is safe on the template itself.
    let source = if greek_gsm { sms::greek_to_gsm(message) } else { message.to_string() };
    let mut template = Template::parse(&source)?;
    template.track_links(MAX_LINKS);
    Ok(template)
}

/// The addresses of a campaign message's tracked links, by index (what a click redirects to).
pub fn link_targets(message: &str, greek_gsm: bool) -> Result<Vec<String>, TemplateError> {
    Ok(tracked_template(message, greek_gsm)?.links().into_iter().map(links::target).collect())
}

impl Composer {
    pub fn new(
        message: &str,
        greek_gsm: bool,
        discount_code: Option<&str>,
        lang: Language,
        public_url: &str,
    ) -> Result<Composer, TemplateError> {
        let template = tracked_template(message, greek_gsm)?;
        let base = public_url.trim_end_matches('/');
        let footer_prefix = unsubscribe_footer(lang, &format!("{base}/u/"));
        Ok(Composer {
            template,
            greek_gsm,
            discount_code: discount_code.map(str::to_string),
            footer_prefix,
            link_prefix: format!("{base}/l/"),
        })
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// Renders the message body (without footer, links as previews show them) into `out`;
    /// returns its length in characters.
    pub fn body(&self, first_name: Option<&str>, last_name: Option<&str>, out: &mut String) -> usize {
        self.render_body(first_name, last_name, Codes::Preview, out);
        out.chars().count()
    }

    /// Runs per recipient, so no allocation unless the Greek GSM mapping needs one (or the
    /// message has links: their codes).
    fn render_body(&self, first_name: Option<&str>, last_name: Option<&str>, codes: Codes<'_>, out: &mut String) {
        out.clear();
        let greek = self.greek_gsm;
        let map = |v| mapped(greek, v);
        let (first, last) = (map(first_name), map(last_name));
        let vars = Vars { first_name: first.as_deref(), last_name: last.as_deref(), discount_code: self.discount_code.as_deref() };
        let link_key = match codes {
            Codes::Message(key, id) => Some((links::key(key), id)),
            Codes::Preview => None,
        };
        let mut link = |index: usize, _url: &str, out: &mut String| {
            out.push_str(&self.link_prefix);
            match &link_key {
                Some((key, id)) => out.push_str(&links::code(key, *id, index)),
                None => out.extend(std::iter::repeat_n('x', links::LINK_CODE_LEN)),
            }
        };
        self.template.render_linked(&vars, &mut link, out);
    }

    /// Renders the full text for one recipient into `out` and counts its segments.
    /// Returns `None` when the body is longer than `MAX_CHARS`.
    pub fn compose(&self, first_name: Option<&str>, last_name: Option<&str>, codes: Codes<'_>, out: &mut String) -> Option<SegmentInfo> {
        self.render_body(first_name, last_name, codes, out);
        // A char is at least one byte, so only a long body needs counting.
        if out.len() > MAX_CHARS && out.chars().count() > MAX_CHARS {
            return None;
        }
        out.push_str(&self.footer_prefix);
        match codes {
            Codes::Message(key, id) => out.push_str(&key.code(id)),
            Codes::Preview => out.extend(std::iter::repeat_n('x', UNSUBSCRIBE_CODE_LEN)),
        }
        Some(sms::analyze(out))
    }

    /// The same composer with every URL sent as written (for messages rendered before links were
    /// tracked, which must render as they were sent).
    pub fn without_link_tracking(mut self) -> Composer {
        self.template.untrack_links();
        self
    }

    /// How many of the message's URLs are tracked links.
    pub fn link_count(&self) -> usize {
        self.template.links().len()
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
        let key = CodeKey::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let info = c.compose(Some("Anna"), None, Codes::Message(&key, 7), &mut out).unwrap();
        assert_eq!(out, format!("Hi Anna, 20% off!\nStop: https://s.example/u/{}", key.code(7)));
        assert_eq!(info.segments, 1);
        let info2 = c.compose(None, None, Codes::Preview, &mut out).unwrap();
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
        assert!(c.compose(Some(&long), None, Codes::Preview, &mut String::new()).is_none());
    }

    #[test]
    fn links_are_tracked_per_recipient_and_previews_count_them_exactly() {
        let long = "https://shop.example.gr/collections/winter-sale-2026?utm_source=sms&utm_campaign=winter";
        let msg = format!("Sale! {long} and www.shop.gr. Code: https://shop.gr/c?d={{{{discount_code}}}}");
        let c = Composer::new(&msg, false, Some("SAVE"), Language::En, "https://s.example/").unwrap();
        assert_eq!(c.link_count(), 2, "the URL glued to a merge tag stays as written");
        assert_eq!(link_targets(&msg, false).unwrap(), [long, "https://www.shop.gr"]);
        let key = CodeKey::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let lk = links::key(&key);
        let (mut real, mut preview) = (String::new(), String::new());
        let info = c.compose(None, None, Codes::Message(&key, 99), &mut real).unwrap();
        let pinfo = c.compose(None, None, Codes::Preview, &mut preview).unwrap();
        let (a, b) = (links::code(&lk, 99, 0), links::code(&lk, 99, 1));
        assert_eq!(
            real,
            format!(
                "Sale! https://s.example/l/{a} and https://s.example/l/{b}. Code: https://shop.gr/c?d=SAVE\nStop: https://s.example/u/{}",
                key.code(99)
            )
        );
        assert!(!real.contains(long));
        assert_eq!((real.chars().count(), info.segments, info.encoding), (preview.chars().count(), pinfo.segments, pinfo.encoding));
        assert_ne!(links::code(&lk, 100, 0), a, "per recipient");
        let plain = Composer::new(&msg, false, Some("SAVE"), Language::En, "https://s.example/").unwrap().without_link_tracking();
        plain.compose(None, None, Codes::Message(&key, 99), &mut real).unwrap();
        assert!(real.starts_with(&format!("Sale! {long} and www.shop.gr. Code:")), "{real}");
    }

    use proptest::prelude::*;

    proptest! {
        /// Preview and send never disagree: for any message, names and options, the preview's
        /// stand-in codes give exactly the real message's length, encoding and segments, and
        /// every tracked link's code leads back to its message and link.
        #[test]
        fn previews_cost_exactly_what_is_sent(
            message in crate::domain::fuzz::nasty_text(120),
            first in proptest::option::of(crate::domain::fuzz::nasty_text(20)),
            last in proptest::option::of(crate::domain::fuzz::nasty_text(20)),
            greek: bool,
            el: bool,
            k0: u64,
            k1: u64,
            id in 1i64..(1 << 50),
        ) {
            let lang = if el { Language::El } else { Language::En };
            let Ok(c) = Composer::new(&message, greek, Some("CODE10"), lang, "https://s.example/") else { return Ok(()) };
            prop_assert_eq!(link_targets(&message, greek).map(|l| l.len()), Ok(c.link_count()));
            let key = CodeKey::new(k0, k1);
            let (mut real, mut preview) = (String::new(), String::new());
            let sent = c.compose(first.as_deref(), last.as_deref(), Codes::Message(&key, id), &mut real);
            let previewed = c.compose(first.as_deref(), last.as_deref(), Codes::Preview, &mut preview);
            prop_assert_eq!(sent.is_some(), previewed.is_some());
            if let (Some(s), Some(p)) = (sent, previewed) {
                prop_assert_eq!((s.encoding, s.segments, s.characters), (p.encoding, p.segments, p.characters), "{:?} / {:?}", real, preview);
            }
            let lk = links::key(&key);
            for index in 0..c.link_count() {
                prop_assert_eq!(links::decode(&lk, &links::code(&lk, id, index)), Some((id, index)));
            }
        }
    }
}
