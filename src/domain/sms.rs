//! SMS encoding detection and segment counting (GSM 03.38 / 3GPP TS 23.038).
//!
//! Segments are what providers bill, so [`analyze`] must be run on the fully
//! rendered text (merge tags, links and the unsubscribe footer included).

use std::collections::HashSet;

/// Character set a message is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 default alphabet (basic + extension table), 7-bit septets.
    Gsm7,
    /// UCS-2 on the wire, in practice UTF-16 (astral chars are surrogate pairs).
    Ucs2,
}

impl Encoding {
    /// Stable lowercase name, used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// Units that fit in a message sent as a single SMS.
    pub fn single_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_SINGLE,
            Encoding::Ucs2 => UCS2_SINGLE,
        }
    }

    /// Units that fit in each part of a concatenated SMS (the rest is the UDH).
    pub fn part_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_PART,
            Encoding::Ucs2 => UCS2_PART,
        }
    }
}

/// Septets in a single GSM-7 SMS (140 octets).
pub const GSM7_SINGLE: usize = 160;
/// Septets per part once the 6-octet concatenation UDH is taken out.
pub const GSM7_PART: usize = 153;
/// UTF-16 code units in a single UCS-2 SMS.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part of a concatenated UCS-2 SMS.
pub const UCS2_PART: usize = 67;

/// Result of [`analyze`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub encoding: Encoding,
    /// Unicode scalar values (`chars().count()`), for display only.
    pub characters: usize,
    /// Septets for GSM-7 (extension chars count 2), UTF-16 code units for UCS-2.
    pub units: usize,
    /// Billable parts; 0 for the empty string.
    pub segments: u32,
}

/// Encoding, size and segment count of `text` (sms-domain.md §1.5).
///
/// Packing is greedy and never splits a GSM escape pair or a UTF-16 surrogate
/// pair across parts, so it can exceed the naive `ceil(units / part)`.
/// Unlike Twilio's calculator it does not keep whole grapheme clusters (flags,
/// ZWJ emoji) together: that needs Unicode segmentation tables std lacks, and
/// the rare off-by-one is reconciled against the provider's part count anyway.
pub fn analyze(text: &str) -> SegmentInfo {
    // This runs for every recipient of every preview and send, so it walks the text as little
    // as it can. GSM-7 first: weights and packing in one pass, stopping at the first char
    // outside the tables.
    let mut gsm = Packing::default();
    let mut characters = 0;
    let mut all_gsm = true;
    for c in text.chars() {
        match gsm7_weight(c) {
            Some(w) => {
                gsm.push(w, GSM7_PART);
                characters += 1;
            }
            None => {
                all_gsm = false;
                break;
            }
        }
    }
    if all_gsm {
        return gsm.finish(Encoding::Gsm7, characters);
    }
    // UCS-2: every char costs its UTF-16 length (so extension chars no longer weigh 2, vector
    // 24): 1, or 2 for the astral chars, whose UTF-8 lead byte is 0xF0..=0xF4. Without astral
    // chars every item weighs 1 and greedy packing is plain division.
    let characters = text.chars().count();
    let astral = text.bytes().filter(|b| *b >= 0xF0).count();
    let packing = if astral == 0 {
        let units = characters;
        Packing { units, parts: units.div_ceil(UCS2_PART).max(1) as u32, used: 0 }
    } else {
        let mut p = Packing::default();
        for c in text.chars() {
            p.push(c.len_utf16(), UCS2_PART);
        }
        p
    };
    packing.finish(Encoding::Ucs2, characters)
}

/// Greedy packing into concatenated parts.
struct Packing {
    units: usize,
    parts: u32,
    used: usize,
}

impl Default for Packing {
    fn default() -> Self {
        Packing { units: 0, parts: 1, used: 0 }
    }
}

impl Packing {
    /// Each char is one indivisible item (weight ≤ 2 ≤ limit), so a char that does not fit opens
    /// the next part whole.
    fn push(&mut self, w: usize, limit: usize) {
        self.units += w;
        if self.used + w > limit {
            self.parts += 1;
            self.used = 0;
        }
        self.used += w;
    }

    fn finish(self, encoding: Encoding, characters: usize) -> SegmentInfo {
        let units = self.units;
        let segments = if units == 0 {
            0
        } else if units <= encoding.single_limit() {
            1
        } else {
            self.parts
        };
        SegmentInfo { encoding, characters, units, segments }
    }
}

/// True if `c` is in the GSM-7 basic or extension table.
pub fn is_gsm7_char(c: char) -> bool {
    gsm7_weight(c).is_some()
}

/// Septets `c` costs in GSM-7: 1 basic, 2 extension (ESC + code), `None` if
/// it cannot be sent in GSM-7 at all.
pub fn gsm7_weight(c: char) -> Option<usize> {
    match c {
        // Printable ASCII is all GSM except the backtick; these nine live in
        // the extension table.
        '^' | '{' | '}' | '\\' | '[' | ']' | '~' | '|' => Some(2),
        '`' => None,
        ' '..='~' | '\n' | '\r' => Some(1),
        // Form feed and the euro sign are the non-ASCII extension chars.
        '\u{000C}' | '€' => Some(2),
        // Non-ASCII part of the basic table. Note `Ç` is in but `ç` is not
        // (3GPP), and only ten Greek capitals are.
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ'
        | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => {
            Some(1)
        }
        _ => None,
    }
}

/// Distinct chars that force UCS-2, in order of first appearance (UI highlighting).
pub fn non_gsm_chars(text: &str) -> Vec<char> {
    let mut seen = HashSet::new();
    text.chars().filter(|&c| !is_gsm7_char(c) && seen.insert(c)).collect()
}

/// True when `text` has Greek letters, i.e. when the `greek_gsm` option could change it.
pub fn has_greek(text: &str) -> bool {
    text.chars().any(|c| ('\u{0370}'..='\u{03FF}').contains(&c) || ('\u{1F00}'..='\u{1FFF}').contains(&c))
}

/// The per-campaign `greek_gsm` option: rewrites Greek into uppercase,
/// unaccented GSM-7 look-alikes so a Greek message is not sent as UCS-2
/// (about 2.3× the cost).
///
/// Only Greek characters change; Latin keeps its case. URLs (`links::url_len`:
/// from `http://`, `https://` or `www.` to the next whitespace) and merge tags (`{{...}}`) are copied
/// verbatim because paths and tag names are case-sensitive. Apply it to the
/// rendered text if defaults or recipient values may contain Greek.
pub fn greek_to_gsm(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Combining accents (decomposed input) are dropped only right after a
    // Greek letter, so Latin `e` + U+0301 is left alone.
    let mut after_greek = false;
    while let Some(c) = rest.chars().next() {
        if let Some(len) = protected_span_len(rest) {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            after_greek = false;
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if after_greek && is_combining_accent(c) {
            continue;
        }
        match greek_capital(c) {
            Some(cap) => {
                out.push(capital_to_gsm(cap));
                after_greek = true;
            }
            None => {
                out.push(greek_punctuation(c).unwrap_or(c));
                after_greek = false;
            }
        }
    }
    out
}

/// Byte length of a URL or merge-tag span starting at the head of `s`.
fn protected_span_len(s: &str) -> Option<usize> {
    if let Some(inner) = s.strip_prefix("{{") {
        // An unclosed `{{` is not a tag; the template parser reports it.
        return inner.find("}}").map(|end| end + 4);
    }
    // The one rule for where a URL starts and ends: the links that are tracked are these spans.
    super::links::url_len(s)
}

fn is_combining_accent(c: char) -> bool {
    // Combining Diacritical Marks block: tonos, dialytika, breathings, etc.
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Greek punctuation with an exact GSM equivalent.
fn greek_punctuation(c: char) -> Option<char> {
    match c {
        // Greek question mark is canonically equivalent to `;`.
        '\u{037E}' => Some(';'),
        // A spacing tonos is what Greek keyboards often type as an elision
        // apostrophe (σ΄αγαπώ).
        '\u{0384}' => Some('\''),
        _ => None,
    }
}

/// Unaccented uppercase base letter (Α..Ω) of a Greek letter, or `None` for
/// anything else (including archaic letters with no modern equivalent).
fn greek_capital(c: char) -> Option<char> {
    let base = match c {
        'Α'..='Ρ' | 'Σ'..='Ω' => c,
        // Final sigma first: the slot 0x20 below it (U+03A2) is unassigned.
        'ς' => 'Σ',
        // Lowercase α..ω sit exactly 0x20 above their capitals.
        'α'..='ω' => char::from_u32(c as u32 - 0x20)?,
        'Ά' | 'ά' => 'Α',
        'Έ' | 'έ' | 'ϵ' => 'Ε',
        'Ή' | 'ή' => 'Η',
        'Ί' | 'ί' | 'Ϊ' | 'ϊ' | 'ΐ' => 'Ι',
        'Ό' | 'ό' => 'Ο',
        'Ύ' | 'ύ' | 'Ϋ' | 'ϋ' | 'ΰ' | 'ϒ' | 'ϓ' | 'ϔ' => 'Υ',
        'Ώ' | 'ώ' => 'Ω',
        // Symbol variants of ordinary letters.
        'ϐ' => 'Β',
        'ϑ' | 'ϴ' => 'Θ',
        'ϕ' => 'Φ',
        'ϖ' => 'Π',
        'ϰ' => 'Κ',
        'ϱ' => 'Ρ',
        'ϲ' | 'Ϲ' => 'Σ',
        // Polytonic Greek Extended: laid out in runs per base vowel; the
        // alphabetic check skips unassigned holes and spacing accents.
        '\u{1F00}'..='\u{1FFF}' if c.is_alphabetic() => polytonic_base(c)?,
        _ => return None,
    };
    Some(base)
}

fn polytonic_base(c: char) -> Option<char> {
    let base = match c as u32 {
        0x1F00..=0x1F0F | 0x1F70..=0x1F71 | 0x1F80..=0x1F8F | 0x1FB0..=0x1FBC => 'Α',
        0x1F10..=0x1F1F | 0x1F72..=0x1F73 | 0x1FC8..=0x1FC9 => 'Ε',
        0x1F20..=0x1F2F | 0x1F74..=0x1F75 | 0x1F90..=0x1F9F | 0x1FC2..=0x1FC7 | 0x1FCA..=0x1FCC => 'Η',
        // U+1FBE is the prosgegrammeni, a standalone iota.
        0x1F30..=0x1F3F | 0x1F76..=0x1F77 | 0x1FBE | 0x1FD0..=0x1FDB => 'Ι',
        0x1F40..=0x1F4F | 0x1F78..=0x1F79 | 0x1FF8..=0x1FF9 => 'Ο',
        0x1F50..=0x1F5F | 0x1F7A..=0x1F7B | 0x1FE0..=0x1FE3 | 0x1FE6..=0x1FEB => 'Υ',
        0x1FE4..=0x1FE5 | 0x1FEC => 'Ρ',
        0x1F60..=0x1F6F | 0x1F7C..=0x1F7D | 0x1FA0..=0x1FAF | 0x1FF2..=0x1FF7 | 0x1FFA..=0x1FFC => 'Ω',
        _ => return None,
    };
    Some(base)
}

/// Maps a Greek capital to what GSM-7 can carry: the ten capitals in the
/// alphabet stay, the other fourteen become their identical-looking Latin.
fn capital_to_gsm(cap: char) -> char {
    match cap {
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        // Γ Δ Θ Λ Ξ Π Σ Φ Ψ Ω
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rep(s: &str, n: usize) -> String {
        s.repeat(n)
    }

    fn digits(n: usize) -> String {
        "1234567890".chars().cycle().take(n).collect()
    }

    /// Lowercase accented Greek promo of exactly 95 chars (vector 20).
    const GREEK_PROMO: &str = "γεια σας! μόνο σήμερα έκπτωση 20% σε όλα τα προϊόντα μας. ελάτε στο κατάστημα, σας περιμένουμε!";

    #[test]
    fn spec_vectors_packed() {
        use Encoding::{Gsm7, Ucs2};
        // (vector #, input, encoding, units, packed segments) from §1.7.
        let cases: Vec<(&str, String, Encoding, usize, u32)> = vec![
            ("1", "Hello".into(), Gsm7, 5, 1),
            ("2", rep("1234567890", 16), Gsm7, 160, 1),
            ("3", digits(161), Gsm7, 161, 2),
            ("4a", rep("a", 306), Gsm7, 306, 2),
            ("4b", rep("a", 307), Gsm7, 307, 3),
            ("5", format!("€{}", digits(158)), Gsm7, 160, 1),
            ("6", format!("€{}", digits(159)), Gsm7, 161, 2),
            ("7", "€€".into(), Gsm7, 4, 1),
            ("8a", rep("{}", 40), Gsm7, 160, 1),
            ("8b", rep("{", 81), Gsm7, 162, 2),
            ("9a", rep("ú", 70), Ucs2, 70, 1),
            ("9b", rep("ú", 71), Ucs2, 71, 2),
            ("10", format!("😜{}", digits(68)), Ucs2, 70, 1),
            ("11", format!("😜{}", digits(69)), Ucs2, 71, 2),
            ("12", format!("😜{}", digits(133)), Ucs2, 135, 3),
            ("13a", format!("🇮🇹{}", digits(66)), Ucs2, 70, 1),
            ("13b", format!("🇮🇹{}", digits(67)), Ucs2, 71, 2),
            ("14", format!("{}😜", digits(152)), Ucs2, 154, 3),
            ("15", format!("{}€{}", rep("a", 152), rep("a", 152)), Gsm7, 306, 3),
            ("16", format!("{}😜{}", rep("a", 66), rep("a", 66)), Ucs2, 134, 3),
            ("17", "ΓΕΙΑ ΣΑΣ".into(), Ucs2, 8, 1),
            ("18", "ΓEIA ΣAΣ".into(), Gsm7, 8, 1),
            ("19a", "Γεια σας".into(), Ucs2, 8, 1),
            ("19b", "Καλημέρα".into(), Ucs2, 8, 1),
            ("20a", GREEK_PROMO.into(), Ucs2, 95, 2),
            ("20b", greek_to_gsm(GREEK_PROMO), Gsm7, 95, 1),
            ("21a", "It’s on".into(), Ucs2, 7, 1),
            ("21b", "It's on".into(), Gsm7, 7, 1),
            ("22a", "a\tb".into(), Ucs2, 3, 1),
            ("22b", "a`b".into(), Ucs2, 3, 1),
            ("23a", "Ç".into(), Gsm7, 1, 1),
            ("23b", "ç".into(), Ucs2, 1, 1),
            ("24a", format!("😀{}", rep("]", 68)), Ucs2, 70, 1),
            ("24b", format!("😀{}", rep("]", 69)), Ucs2, 71, 2),
        ];
        for (id, input, encoding, units, segments) in cases {
            let info = analyze(&input);
            assert_eq!((info.encoding, info.units, info.segments), (encoding, units, segments), "vector {id}: {input:?}");
            assert_eq!(info.characters, input.chars().count(), "vector {id}");
        }
    }

    #[test]
    fn greek_promo_is_95_chars() {
        assert_eq!(GREEK_PROMO.chars().count(), 95);
        assert_eq!(
            greek_to_gsm(GREEK_PROMO),
            "ΓEIA ΣAΣ! MONO ΣHMEPA EKΠTΩΣH 20% ΣE OΛA TA ΠPOIONTA MAΣ. EΛATE ΣTO KATAΣTHMA, ΣAΣ ΠEPIMENOYME!"
        );
    }

    #[test]
    fn escape_chars_weigh_two() {
        for c in ['|', '^', '€', '{', '}', '[', ']', '~', '\\', '\u{000C}'] {
            assert_eq!(gsm7_weight(c), Some(2), "{c:?}");
            // Each one fills a single SMS with 158 digits (vector 5 for all nine).
            let info = analyze(&format!("{c}{}", digits(158)));
            assert_eq!((info.units, info.segments), (160, 1), "{c:?}");
        }
    }

    #[test]
    fn empty_text_has_no_segments() {
        let info = analyze("");
        assert_eq!(info, SegmentInfo { encoding: Encoding::Gsm7, characters: 0, units: 0, segments: 0 });
    }

    #[test]
    fn encoding_names() {
        assert_eq!(Encoding::Gsm7.as_str(), "gsm7");
        assert_eq!(Encoding::Ucs2.as_str(), "ucs2");
    }

    /// The 3GPP basic table in code order, independent of the `match` above;
    /// `None` is 0x1B (ESC), which is not a character of its own.
    const BASIC_TABLE: [Option<char>; 128] = {
        const S: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1B}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        let bytes = S.as_bytes();
        let mut table = [None; 128];
        let (mut i, mut n) = (0, 0);
        while i < bytes.len() {
            // Minimal const UTF-8 decoder (1–2 byte sequences suffice here).
            let (c, len) =
                if bytes[i] < 0x80 { (bytes[i] as u32, 1) } else { (((bytes[i] as u32 & 0x1F) << 6) | (bytes[i + 1] as u32 & 0x3F), 2) };
            if c != 0x1B {
                table[n] = char::from_u32(c);
            }
            i += len;
            n += 1;
        }
        assert!(n == 128);
        table
    };

    #[test]
    fn basic_and_extension_tables_are_exact() {
        let basic: HashSet<char> = BASIC_TABLE.iter().flatten().copied().collect();
        assert_eq!(basic.len(), 127);
        let extension: HashSet<char> = "\u{000C}^{}\\[~]|€".chars().collect();
        assert_eq!(extension.len(), 10);
        // Every scalar value: the table above and the match must agree.
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let expected = if basic.contains(&c) {
                Some(1)
            } else if extension.contains(&c) {
                Some(2)
            } else {
                None
            };
            assert_eq!(gsm7_weight(c), expected, "{c:?} U+{:04X}", c as u32);
        }
    }

    #[test]
    fn non_gsm_chars_distinct_in_order() {
        assert_eq!(non_gsm_chars("It’s ç`ç, it’s 😀 \t ok €"), vec!['’', 'ç', '`', '😀', '\t']);
        assert!(non_gsm_chars("Hello {€}").is_empty());
    }

    #[test]
    fn greek_to_gsm_examples() {
        assert_eq!(greek_to_gsm("Γεια σας"), "ΓEIA ΣAΣ");
        assert_eq!(greek_to_gsm("Καλημέρα"), "KAΛHMEPA");
        assert_eq!(greek_to_gsm("ΓΕΙΑ ΣΑΣ"), "ΓEIA ΣAΣ");
        assert_eq!(greek_to_gsm("προϊόν ΐ ΰ ϋ Ϊ"), "ΠPOION I Y Y I");
        assert_eq!(greek_to_gsm("Hello Γιάννη, code aBc12"), "Hello ΓIANNH, code aBc12");
        // Decomposed accents after Greek go; after Latin they stay.
        assert_eq!(greek_to_gsm("α\u{0301} e\u{0301}"), "A e\u{0301}");
        // Polytonic.
        assert_eq!(greek_to_gsm("ἄνθρωπος ᾠδή Ῥόδος"), "ANΘPΩΠOΣ ΩΔH POΔOΣ");
        assert_eq!(greek_to_gsm("τι;\u{037E} σ\u{0384}αγαπώ"), "TI;; Σ'AΓAΠΩ");
        assert_eq!(
            greek_to_gsm("δες https://x.gr/Προσφορά και HTTP://A.gr/ά {{ first_name | φίλε }}!"),
            "ΔEΣ https://x.gr/Προσφορά KAI HTTP://A.gr/ά {{ first_name | φίλε }}!"
        );
        // An unclosed `{{` is not protected.
        assert_eq!(greek_to_gsm("{{όνομα"), "{{ONOMA");
        // Archaic letters without a look-alike are left for the UCS-2 fallback.
        assert_eq!(greek_to_gsm("ϛ"), "ϛ");
    }

    // --- property tests ---

    /// Chars biased towards the interesting classes: basic, extension,
    /// non-GSM BMP, astral (surrogate pairs), plus anything at all.
    fn sms_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => prop::sample::select(vec!['a', 'Z', '0', ' ', '\n', '@', 'é', 'Ç', 'Δ', 'Ω']),
            2 => prop::sample::select(vec!['€', '{', '}', '[', ']', '~', '\\', '|', '^', '\u{000C}']),
            1 => prop::sample::select(vec!['ç', '`', '\t', '’', 'ú', 'α', 'Ε']),
            1 => prop::sample::select(vec!['😀', '😜', '🇮', '𝄞']),
            1 => any::<char>(),
        ]
    }

    fn sms_text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(sms_char(), 0..max).prop_map(|v| v.into_iter().collect())
    }

    /// Mostly-GSM text, so that long GSM-7 messages actually get generated.
    fn gsm_text(max: usize) -> impl Strategy<Value = String> {
        let c = prop_oneof![
            6 => prop::sample::select(vec!['a', '1', ' ', 'Σ', '\n']),
            2 => prop::sample::select(vec!['€', '{', ']']),
            1 => prop::sample::select(vec!['ç', '😀']),
        ];
        prop::collection::vec(c, 0..max).prop_map(|v| v.into_iter().collect())
    }

    /// Independent reference: materialise the parts, then count them.
    fn reference_segments(text: &str) -> u32 {
        let gsm = text.chars().all(|c| gsm7_weight(c).is_some());
        let weight = |c: char| {
            if gsm {
                gsm7_weight(c).unwrap()
            } else {
                let mut buf = [0u16; 2];
                c.encode_utf16(&mut buf).len()
            }
        };
        let (single, part) = if gsm { (160, 153) } else { (70, 67) };
        let total: usize = text.chars().map(weight).sum();
        if total == 0 {
            return 0;
        }
        if total <= single {
            return 1;
        }
        let mut parts: Vec<Vec<char>> = vec![Vec::new()];
        for c in text.chars() {
            let current: usize = parts.last().unwrap().iter().map(|&p| weight(p)).sum();
            if current + weight(c) > part {
                parts.push(Vec::new());
            }
            parts.last_mut().unwrap().push(c);
        }
        for p in &parts {
            assert!(p.iter().map(|&c| weight(c)).sum::<usize>() <= part);
        }
        assert_eq!(parts.concat().into_iter().collect::<String>(), text);
        parts.len() as u32
    }

    /// The straightforward multi-pass version `analyze` replaced (one pass is faster); the two
    /// must agree on every field.
    fn analyze_multi_pass(text: &str) -> SegmentInfo {
        let characters = text.chars().count();
        let encoding = if text.chars().all(is_gsm7_char) { Encoding::Gsm7 } else { Encoding::Ucs2 };
        let weight = |c: char| match encoding {
            Encoding::Gsm7 => gsm7_weight(c).unwrap_or(2),
            Encoding::Ucs2 => c.len_utf16(),
        };
        let units: usize = text.chars().map(weight).sum();
        let segments = if units == 0 {
            0
        } else if units <= encoding.single_limit() {
            1
        } else {
            let limit = encoding.part_limit();
            let (mut parts, mut used) = (1, 0);
            for w in text.chars().map(weight) {
                if used + w > limit {
                    parts += 1;
                    used = 0;
                }
                used += w;
            }
            parts
        };
        SegmentInfo { encoding, characters, units, segments }
    }

    /// Letters of the modern and polytonic Greek alphabet.
    fn greek_letter() -> impl Strategy<Value = char> {
        let mut letters: Vec<char> = ('\u{0391}'..='\u{03A9}')
            .chain('\u{03AA}'..='\u{03CE}')
            .chain(['Ά', 'Έ', 'Ή', 'Ί', 'Ό', 'Ύ', 'Ώ', 'ΐ'])
            .filter(|c| c.is_alphabetic())
            .collect();
        letters.extend(('\u{1F00}'..='\u{1FFF}').filter(|c| c.is_alphabetic()));
        prop::sample::select(letters)
    }

    fn greek_text(max: usize) -> impl Strategy<Value = String> {
        let c = prop_oneof![
            6 => greek_letter(),
            1 => Just(' '),
            1 => prop::char::range('0', '9'),
        ];
        prop::collection::vec(c, 0..max).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn prop_gsm7_iff_all_chars_gsm7(text in sms_text(200)) {
            let all = text.chars().all(is_gsm7_char);
            prop_assert_eq!(analyze(&text).encoding == Encoding::Gsm7, all);
            prop_assert_eq!(non_gsm_chars(&text).is_empty(), all);
        }

        #[test]
        fn prop_append_never_decreases_segments(text in sms_text(400), c in sms_char()) {
            let before = analyze(&text).segments;
            let after = analyze(&format!("{text}{c}")).segments;
            prop_assert!(after >= before, "{} -> {}", before, after);
        }

        #[test]
        fn prop_matches_reference_packer(text in sms_text(400)) {
            prop_assert_eq!(analyze(&text).segments, reference_segments(&text));
        }

        #[test]
        fn prop_one_pass_matches_multi_pass(text in sms_text(700)) {
            prop_assert_eq!(analyze(&text), analyze_multi_pass(&text));
        }

        #[test]
        fn prop_one_pass_matches_multi_pass_gsm(text in gsm_text(700)) {
            prop_assert_eq!(analyze(&text), analyze_multi_pass(&text));
        }

        #[test]
        fn prop_matches_reference_packer_long_gsm(text in gsm_text(700)) {
            prop_assert_eq!(analyze(&text).segments, reference_segments(&text));
        }

        #[test]
        fn prop_basic_only_gsm_is_naive(n in 161usize..2000) {
            let text: String = "ab1 Σ@".chars().cycle().take(n).collect();
            let info = analyze(&text);
            prop_assert_eq!(info.encoding, Encoding::Gsm7);
            prop_assert_eq!(info.segments as usize, n.div_ceil(153));
        }

        #[test]
        fn prop_units_match_definition(text in sms_text(200)) {
            let info = analyze(&text);
            let expected = match info.encoding {
                Encoding::Gsm7 => text.chars().map(|c| gsm7_weight(c).unwrap()).sum(),
                Encoding::Ucs2 => text.encode_utf16().count(),
            };
            prop_assert_eq!(info.units, expected);
        }

        #[test]
        fn prop_greek_becomes_gsm7(text in greek_text(300)) {
            let mapped = greek_to_gsm(&text);
            prop_assert!(non_gsm_chars(&mapped).is_empty(), "{:?} -> {:?}", text, mapped);
            prop_assert_eq!(analyze(&mapped).encoding, Encoding::Gsm7);
            // One output char per input char: no letters are lost or doubled.
            prop_assert_eq!(mapped.chars().count(), text.chars().count());
        }

        #[test]
        fn prop_greek_to_gsm_keeps_urls_and_tags(
            a in greek_text(30),
            b in greek_text(30),
            c in greek_text(30),
        ) {
            const URL: &str = "https://x.gr/αβ";
            const TAG: &str = "{{first_name}}";
            let mapped = greek_to_gsm(&format!("{a} {URL} {b}{TAG}{c}"));
            let expected = format!(
                "{} {URL} {}{TAG}{}",
                greek_to_gsm(&a),
                greek_to_gsm(&b),
                greek_to_gsm(&c)
            );
            prop_assert_eq!(mapped, expected);
        }

        #[test]
        fn prop_greek_to_gsm_leaves_non_greek_alone(text in "[ -~\n]{0,200}") {
            prop_assert_eq!(greek_to_gsm(&text), text);
        }

        /// Any text at all (control characters, lone combining marks, emoji, BOM) is counted, and
        /// the counts agree with their definitions.
        #[test]
        fn prop_any_text_is_counted(text in prop_oneof![crate::domain::fuzz::nasty_text(400), any::<String>()]) {
            let info = analyze(&text);
            prop_assert_eq!(info.characters, text.chars().count());
            prop_assert_eq!(info.segments == 0, text.is_empty());
            prop_assert!(info.units >= info.characters || info.encoding == Encoding::Ucs2);
            prop_assert!(info.segments as usize <= info.units.max(1), "{:?}", info);
            prop_assert_eq!(info, analyze_multi_pass(&text));
            // The Greek mapping drops only accents, and mapping twice is mapping once.
            let mapped = greek_to_gsm(&text);
            prop_assert!(mapped.chars().count() <= text.chars().count());
            prop_assert_eq!(greek_to_gsm(&mapped), mapped.clone());
        }
    }
}
