//! Campaign message templates: merge tags and per-recipient rendering.
//!
//! Syntax: `{{name}}` or `{{name|default}}`, where `name` is one of
//! `first_name`, `last_name`, `discount_code` (case-insensitive, whitespace
//! around the name and the default ignored). Everything else is literal text,
//! including a lone `{`, `}` or `{x}`.

use std::fmt;

/// A merge tag a template may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    FirstName,
    LastName,
    DiscountCode,
}

impl Tag {
    /// Canonical name as written in a template.
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::FirstName => "first_name",
            Tag::LastName => "last_name",
            Tag::DiscountCode => "discount_code",
        }
    }

    fn from_name(name: &str) -> Option<Tag> {
        [Tag::FirstName, Tag::LastName, Tag::DiscountCode].into_iter().find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

/// One parsed piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text, exactly as written.
    Text(String),
    /// A merge tag; `default` is `None` when absent or blank.
    Tag { tag: Tag, default: Option<String> },
    /// A tracked link (see [`Template::track_links`]): the `index`-th of the message, `url` as
    /// written.
    Link { index: usize, url: String },
}

/// A parsed campaign message; parse once, render per recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a message is not a valid template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{...}}` whose name is not a known tag; holds the name as written
    /// (trimmed), `""` for `{{ }}`.
    UnknownTag(String),
    /// A `{{` with no `}}` after it.
    Unclosed,
    /// The message is blank after trimming.
    Empty,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::UnknownTag(name) => write!(f, "unknown merge tag {{{{{name}}}}}; use first_name, last_name or discount_code"),
            TemplateError::Unclosed => f.write_str("merge tag opened with {{ is never closed with }}"),
            TemplateError::Empty => f.write_str("message is empty"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Per-recipient values; `None` and blank values fall back to the tag's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vars<'a> {
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub discount_code: Option<&'a str>,
}

impl<'a> Vars<'a> {
    fn get(&self, tag: Tag) -> Option<&'a str> {
        match tag {
            Tag::FirstName => self.first_name,
            Tag::LastName => self.last_name,
            Tag::DiscountCode => self.discount_code,
        }
    }
}

impl Template {
    /// Parses a campaign message.
    pub fn parse(message: &str) -> Result<Template, TemplateError> {
        if message.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut rest = message;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let inner_start = open + 2;
            let close = rest[inner_start..].find("}}").ok_or(TemplateError::Unclosed)?;
            let inner = &rest[inner_start..inner_start + close];
            let (name, default) = match inner.split_once('|') {
                Some((name, default)) => (name.trim(), default.trim()),
                None => (inner.trim(), ""),
            };
            let tag = Tag::from_name(name).ok_or_else(|| TemplateError::UnknownTag(name.to_owned()))?;
            pieces.push(Piece::Tag {
                tag,
                // A blank default behaves exactly like none, so store one form.
                default: (!default.is_empty()).then(|| default.to_owned()),
            });
            rest = &rest[inner_start + close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template { pieces })
    }

    /// Appends the message for one recipient to `out` (not cleared, so a
    /// buffer can be reused across recipients). The unsubscribe footer is not
    /// part of the template: append it after, or use [`Template::render_with_footer`].
    ///
    /// Values are inserted verbatim and never re-parsed, so a name containing
    /// `{{x}}` stays literal.
    pub fn render(&self, vars: &Vars<'_>, out: &mut String) {
        self.render_linked(vars, &mut |_, url, out| out.push_str(url), out);
    }

    /// [`Template::render`], with each tracked link written by `link(index, url, out)`.
    pub fn render_linked(&self, vars: &Vars<'_>, link: &mut dyn FnMut(usize, &str, &mut String), out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Link { index, url } => link(*index, url, out),
                Piece::Tag { tag, default } => {
                    // Whitespace-only values come from sloppy imports; treat
                    // them as missing rather than sending "Hi  ,".
                    let value = vars.get(*tag).filter(|v| !v.trim().is_empty());
                    if let Some(v) = value.or(default.as_deref()) {
                        out.push_str(v);
                    }
                }
            }
        }
    }

    /// [`Template::render`] followed by `footer` (from [`unsubscribe_footer`]).
    pub fn render_with_footer(&self, vars: &Vars<'_>, footer: &str, out: &mut String) {
        self.render(vars, out);
        out.push_str(footer);
    }

    /// Makes every URL of the literal text a [`Piece::Link`], numbered in order, up to `max`; the
    /// rest stay text. A URL that runs straight into a merge tag (`…?code={{discount_code}}`) stays
    /// text too: its address differs per recipient, and a tracked link has one address.
    pub fn track_links(&mut self, max: usize) {
        let mut pieces = Vec::with_capacity(self.pieces.len());
        let mut count = 0;
        let mut old = std::mem::take(&mut self.pieces).into_iter().peekable();
        while let Some(piece) = old.next() {
            let Piece::Text(text) = piece else {
                pieces.push(piece);
                continue;
            };
            let glued_to_tag = matches!(old.peek(), Some(Piece::Tag { .. }));
            let mut last = 0;
            for r in super::links::find(&text) {
                if count == max || (glued_to_tag && r.end == text.len()) {
                    break;
                }
                if r.start > last {
                    pieces.push(Piece::Text(text[last..r.start].to_string()));
                }
                pieces.push(Piece::Link { index: count, url: text[r.clone()].to_string() });
                count += 1;
                last = r.end;
            }
            if last < text.len() {
                pieces.push(Piece::Text(text[last..].to_string()));
            }
        }
        self.pieces = pieces;
    }

    /// Undoes [`Template::track_links`]: every link is text again, as written.
    pub fn untrack_links(&mut self) {
        for p in &mut self.pieces {
            if let Piece::Link { url, .. } = p {
                *p = Piece::Text(std::mem::take(url));
            }
        }
    }

    /// The tracked links' addresses as written, by index.
    pub fn links(&self) -> Vec<&str> {
        self.pieces.iter().filter_map(|p| if let Piece::Link { url, .. } = p { Some(url.as_str()) } else { None }).collect()
    }

    /// True if the template uses `tag` anywhere (e.g. to require discount codes).
    pub fn has_tag(&self, tag: Tag) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Tag { tag: t, .. } if *t == tag))
    }

    /// The parsed pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }
}

/// Language of the fixed texts we add to a message (the footer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    En,
    El,
}

impl Language {
    /// `"en"` or `"el"`, case-insensitive; `"gr"` is accepted for Greek
    /// because tenants commonly use the country code.
    pub fn parse(code: &str) -> Option<Language> {
        let code = code.trim();
        if code.eq_ignore_ascii_case("en") {
            Some(Language::En)
        } else if code.eq_ignore_ascii_case("el") || code.eq_ignore_ascii_case("gr") {
            Some(Language::El)
        } else {
            None
        }
    }

    /// ISO 639-1 code.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::El => "el",
        }
    }
}

/// "ΔIAΓPAΦH" (unsubscribe): Δ Γ Φ are GSM-7 capitals, the rest are the Latin
/// look-alikes I A P A H, so the footer never forces UCS-2. Chosen over a
/// shorter "ΣTOΠ" because the opt-out must be unambiguous to recipients.
const EL_UNSUBSCRIBE: &str = "\u{0394}IA\u{0393}PA\u{03A6}H";

/// The unsubscribe footer appended to every message. Kept as short as
/// possible because it is paid for in every segment count, and GSM-7-only so
/// it cannot flip a GSM-7 message to UCS-2.
pub fn unsubscribe_footer(lang: Language, url: &str) -> String {
    let label = match lang {
        Language::En => "Stop",
        Language::El => EL_UNSUBSCRIBE,
    };
    format!("\n{label}: {url}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sms::{Encoding, analyze, greek_to_gsm};
    use proptest::prelude::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.to_owned())
    }

    fn tag(tag: Tag, default: Option<&str>) -> Piece {
        Piece::Tag { tag, default: default.map(str::to_owned) }
    }

    fn render(t: &Template, vars: Vars<'_>) -> String {
        let mut out = String::new();
        t.render(&vars, &mut out);
        out
    }

    const MARIA: Vars<'static> = Vars { first_name: Some("Maria"), last_name: Some("Papadopoulou"), discount_code: Some("SAVE20") };

    #[test]
    fn parse_table() {
        use Tag::*;
        let cases: Vec<(&str, Vec<Piece>)> = vec![
            ("Hello", vec![text("Hello")]),
            ("{{first_name}}", vec![tag(FirstName, None)]),
            ("Hi {{first_name}}!", vec![text("Hi "), tag(FirstName, None), text("!")]),
            ("{{ First_Name | there }}", vec![tag(FirstName, Some("there"))]),
            ("{{LAST_NAME}}", vec![tag(LastName, None)]),
            ("{{\tdiscount_code\n}}", vec![tag(DiscountCode, None)]),
            ("{{first_name|}}", vec![tag(FirstName, None)]),
            ("{{first_name|  }}", vec![tag(FirstName, None)]),
            // Only the first pipe splits; the default keeps inner spaces.
            ("{{first_name| dear friend | x }}", vec![tag(FirstName, Some("dear friend | x"))]),
            ("{{first_name}}{{last_name}}", vec![tag(FirstName, None), tag(LastName, None)]),
            // Lone braces and single-brace groups are literal.
            ("a { b } c", vec![text("a { b } c")]),
            ("{x} and {first_name}", vec![text("{x} and {first_name}")]),
            ("50% off }}", vec![text("50% off }}")]),
            ("{ {{first_name}} }", vec![text("{ "), tag(FirstName, None), text(" }")]),
            // Newlines and spacing outside tags are preserved exactly.
            ("  Line 1\r\n\nLine 3 {{discount_code}}\n", vec![text("  Line 1\r\n\nLine 3 "), tag(DiscountCode, None), text("\n")]),
        ];
        for (input, pieces) in cases {
            let t = Template::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(t.pieces(), pieces.as_slice(), "{input:?}");
        }
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("", TemplateError::Empty),
            ("  \n\t ", TemplateError::Empty),
            ("Hi {{first_name", TemplateError::Unclosed),
            ("Hi {{first_name}} {{", TemplateError::Unclosed),
            ("Hi {{first_name}", TemplateError::Unclosed),
            ("Hi {{ }}", TemplateError::UnknownTag(String::new())),
            ("Hi {{}}", TemplateError::UnknownTag(String::new())),
            ("Hi {{ |there }}", TemplateError::UnknownTag(String::new())),
            ("Hi {{ Name }}", TemplateError::UnknownTag("Name".into())),
            ("Hi {{ FirstName|x }}", TemplateError::UnknownTag("FirstName".into())),
            ("{{first name}}", TemplateError::UnknownTag("first name".into())),
            ("{{first_name}} {{όνομα}}", TemplateError::UnknownTag("όνομα".into())),
        ];
        for (input, err) in cases {
            assert_eq!(Template::parse(input), Err(err), "{input:?}");
        }
    }

    #[test]
    fn error_messages_name_the_tag() {
        let err = Template::parse("{{ Name }}").unwrap_err();
        assert_eq!(err.to_string(), "unknown merge tag {{Name}}; use first_name, last_name or discount_code");
    }

    #[test]
    fn render_table() {
        let none = Vars::default();
        let blank = Vars { first_name: Some(""), last_name: Some("  "), discount_code: Some("") };
        let cases: Vec<(&str, Vars<'_>, &str)> = vec![
            ("Hi {{first_name}}!", MARIA, "Hi Maria!"),
            ("Hi {{first_name}}!", none, "Hi !"),
            ("Hi {{ first_name | there }}!", MARIA, "Hi Maria!"),
            ("Hi {{ first_name | there }}!", none, "Hi there!"),
            ("Hi {{ first_name | there }}!", blank, "Hi there!"),
            ("{{LAST_NAME|x}}", blank, "x"),
            ("{{First_Name}} {{last_name}}: {{DISCOUNT_CODE}}", MARIA, "Maria Papadopoulou: SAVE20"),
            ("Code\n{{discount_code|none}}\n\n", none, "Code\nnone\n\n"),
            ("{x} { } }}", MARIA, "{x} { } }}"),
        ];
        for (input, vars, expected) in cases {
            let t = Template::parse(input).unwrap();
            assert_eq!(render(&t, vars), expected, "{input:?}");
        }
    }

    #[test]
    fn values_are_inserted_verbatim() {
        let t = Template::parse("Hi {{first_name}}").unwrap();
        let vars = Vars { first_name: Some(" {{last_name}} | x }} "), last_name: Some("NOPE"), ..Vars::default() };
        assert_eq!(render(&t, vars), "Hi  {{last_name}} | x }} ");
    }

    #[test]
    fn render_appends_and_footer_follows() {
        let t = Template::parse("Hi {{first_name|there}}").unwrap();
        let mut out = String::from(">");
        t.render(&Vars::default(), &mut out);
        assert_eq!(out, ">Hi there");
        out.clear();
        let footer = unsubscribe_footer(Language::En, "https://s.io/u/x");
        t.render_with_footer(&MARIA, &footer, &mut out);
        assert_eq!(out, "Hi Maria\nStop: https://s.io/u/x");
    }

    #[test]
    fn has_tag() {
        let t = Template::parse("{{first_name}} use {{ Discount_Code |-}}").unwrap();
        assert!(t.has_tag(Tag::FirstName));
        assert!(t.has_tag(Tag::DiscountCode));
        assert!(!t.has_tag(Tag::LastName));
        assert!(!Template::parse("{discount_code}").unwrap().has_tag(Tag::DiscountCode));
    }

    #[test]
    fn language_codes() {
        assert_eq!(Language::parse("en"), Some(Language::En));
        assert_eq!(Language::parse("EN"), Some(Language::En));
        assert_eq!(Language::parse("el"), Some(Language::El));
        assert_eq!(Language::parse("El"), Some(Language::El));
        assert_eq!(Language::parse("gr"), Some(Language::El));
        assert_eq!(Language::parse("GR"), Some(Language::El));
        assert_eq!(Language::parse("de"), None);
        assert_eq!(Language::parse(""), None);
        for lang in [Language::En, Language::El] {
            assert_eq!(Language::parse(lang.as_str()), Some(lang));
        }
    }

    #[test]
    fn footers_are_gsm7() {
        let url = "https://sms.example/u/Ab3_x-9";
        assert_eq!(unsubscribe_footer(Language::En, url), format!("\nStop: {url}"));
        assert_eq!(unsubscribe_footer(Language::El, url), format!("\nΔIAΓPAΦH: {url}"));
        // The Greek label is exactly the look-alike form of the real word.
        assert_eq!(EL_UNSUBSCRIBE, greek_to_gsm("ΔΙΑΓΡΑΦΗ"));
        for lang in [Language::En, Language::El] {
            let footer = unsubscribe_footer(lang, url);
            let info = analyze(&footer);
            assert_eq!(info.encoding, Encoding::Gsm7, "{lang:?}");
            // Each char is one septet: nothing from the extension table.
            assert_eq!(info.units, footer.chars().count(), "{lang:?}");
            // Appending it to a GSM-7 message keeps it GSM-7.
            let msg = format!("Hi Maria, -20% today!{footer}");
            assert_eq!(analyze(&msg).encoding, Encoding::Gsm7, "{lang:?}");
        }
    }

    proptest! {
        #[test]
        fn prop_text_without_tags_renders_unchanged(
            s in "([{}a-zé😀 \n\t|]|\\PC){1,80}"
                .prop_filter("no tag opener, not blank", |s| {
                    !s.contains("{{") && !s.trim().is_empty()
                })
        ) {
            let t = Template::parse(&s).unwrap();
            prop_assert!(!t.has_tag(Tag::FirstName));
            prop_assert_eq!(render(&t, MARIA), s);
        }

        #[test]
        fn prop_parse_never_panics(s in "([{}|]|first_name|\\PC){0,60}") {
            if let Ok(t) = Template::parse(&s) {
                let _ = render(&t, MARIA);
            }
        }

        /// Rendering is total: every template that parses renders for any values, each value
        /// goes in verbatim (never parsed again), and text outside tags comes out as written.
        #[test]
        fn prop_render_is_total_and_verbatim(
            s in crate::domain::fuzz::nasty_text(80),
            first in proptest::option::of(crate::domain::fuzz::nasty_text(20)),
            last in proptest::option::of(crate::domain::fuzz::nasty_text(20)),
            code in proptest::option::of(crate::domain::fuzz::nasty_text(10)),
        ) {
            let Ok(mut t) = Template::parse(&s) else { return Ok(()) };
            let vars = Vars { first_name: first.as_deref(), last_name: last.as_deref(), discount_code: code.as_deref() };
            let mut plain = String::new();
            t.render(&vars, &mut plain);
            // Rendering again by pieces gives the same text: literal text, then each tag's value
            // (or its default).
            let mut by_pieces = String::new();
            for p in t.pieces() {
                match p {
                    Piece::Text(x) | Piece::Link { url: x, .. } => by_pieces.push_str(x),
                    Piece::Tag { tag, default } => {
                        let v = vars.get(*tag).filter(|v| !v.trim().is_empty());
                        by_pieces.push_str(v.or(default.as_deref()).unwrap_or(""));
                    }
                }
            }
            prop_assert_eq!(&plain, &by_pieces);
            if !s.contains("{{") {
                prop_assert_eq!(&plain, &s);
            }
            // Tracking links changes where links point, not the text around them.
            t.track_links(16);
            let mut linked = String::new();
            t.render(&vars, &mut linked);
            prop_assert_eq!(&linked, &plain);
            prop_assert!(t.links().len() <= 16);
            t.untrack_links();
            prop_assert!(t.links().is_empty());
        }

        /// A name that looks like a template stays literal.
        #[test]
        fn prop_values_are_never_parsed(name in "\\{\\{(first_name|last_name|nope)\\}\\}[a-z]{0,5}") {
            let t = Template::parse("Hi {{first_name}}!").unwrap();
            let mut out = String::new();
            t.render(&Vars { first_name: Some(&name), ..Vars::default() }, &mut out);
            prop_assert_eq!(out, format!("Hi {name}!"));
        }
    }
}
