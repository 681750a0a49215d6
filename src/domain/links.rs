//! Tracked links. Every URL in a campaign message is sent as `{public_url}/l/{code}`, one code per
//! recipient and link. Like unsubscribe codes, a link code is a number under a keyed permutation
//! (`unsubscribe::CodeKey`, with a key derived for links only): the message id times 16 plus the
//! link's position in the message. So no row is written per recipient and link: a click decodes
//! its code to (message, link), and the link's address is the campaign message's n-th URL.

use super::unsubscribe::{CODE_LEN, CodeKey};

/// Links tracked per message; a message's further URLs are sent as written.
pub const MAX_LINKS: usize = 16;
const INDEX_BITS: u32 = 4;
/// Purpose of the derived key (`CodeKey::derive`).
const LINK_KEY: u64 = 1;
/// Length of a link code: the same as an unsubscribe code (10 characters, ~58 bits).
pub const LINK_CODE_LEN: usize = CODE_LEN;

/// The key of link codes, derived from the installation's code key.
pub fn key(codes: &CodeKey) -> CodeKey {
    codes.derive(LINK_KEY)
}

/// The code of link `index` of message `message` (under `key(…)`).
pub fn code(link_key: &CodeKey, message: i64, index: usize) -> String {
    debug_assert!(index < MAX_LINKS);
    link_key.code(message << INDEX_BITS | index as i64)
}

/// The message and link a code names, if it is well formed.
pub fn decode(link_key: &CodeKey, code: &str) -> Option<(i64, usize)> {
    let n = link_key.message_id(code)?;
    Some((n >> INDEX_BITS, (n & ((1 << INDEX_BITS) - 1)) as usize))
}

/// Byte length of the URL at the head of `s`, if one starts there: `http://`, `https://` or
/// `www.` (any case) up to the next whitespace, without the punctuation a sentence puts after it
/// ("see https://x.gr/sale." ends at `sale`). A closing bracket stays when it closes one the URL opened.
pub fn url_len(s: &str) -> Option<usize> {
    let starts = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    let scheme = ["https://", "http://", "www."].into_iter().find(|p| starts(p))?.len();
    let mut end = s.find(char::is_whitespace).unwrap_or(s.len());
    while end > scheme {
        let last = s[..end].chars().next_back()?;
        let count = |c: char| s[..end].matches(c).count();
        let unmatched = match last {
            ')' => count(')') > count('('),
            ']' => count(']') > count('['),
            _ => false,
        };
        if ".,;:!?'\"»…".contains(last) || unmatched {
            end -= last.len_utf8();
        } else {
            break;
        }
    }
    (end > scheme).then_some(end)
}

/// The URLs of a text as byte ranges, in order. A URL starts only after a non-alphanumeric
/// character (or at the start), so "xhttp://" is no link.
pub fn find(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut prev_alnum = false;
    while i < text.len() {
        if !prev_alnum && let Some(len) = url_len(&text[i..]) {
            out.push(i..i + len);
            i += len;
            prev_alnum = true;
            continue;
        }
        let c = text[i..].chars().next().expect("i is at a char boundary");
        prev_alnum = c.is_alphanumeric();
        i += c.len_utf8();
    }
    out
}

/// Where a click goes: the URL as written, with `https://` before a bare `www.` address.
pub fn target(url: &str) -> String {
    if url.get(..4).is_some_and(|h| h.eq_ignore_ascii_case("www.")) { format!("https://{url}") } else { url.to_string() }
}

/// An address as a `Location` header carries it: bytes outside printable ASCII percent-encoded
/// (a Greek path, say), everything else as written.
pub fn location(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// User agents of link previews and crawlers (messaging apps, social networks, search engines,
/// security scanners, HTTP libraries): their visits are recorded but are not clicks. Lower case,
/// matched as substrings. Bare "bot" is not one of them: it is inside phone names ("CUBOT").
const BOTS: [&str; 34] = [
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "whatsapp",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "applebot",
    "googlebot",
    "google-inspectiontool",
    "adsbot-google",
    "bingbot",
    "bingpreview",
    "pinterest",
    "redditbot",
    "embedly",
    "iframely",
    "viber",
    "snapchat",
    "yandex",
    "baiduspider",
    "duckduckbot",
    "bot/",
    "bot;",
    "crawler",
    "spider",
    "preview",
    "curl/",
    "wget/",
    "python-requests",
    "go-http-client",
];

/// Whether a visit with this user agent is a machine looking at the link, not a person clicking
/// it. No user agent at all is a machine too: every browser sends one.
pub fn is_preview_bot(user_agent: Option<&str>) -> bool {
    let Some(ua) = user_agent.map(str::trim).filter(|u| !u.is_empty()) else { return true };
    let ua = ua.to_ascii_lowercase();
    BOTS.iter().any(|b| ua.contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn urls_in_text() {
        let t = "Sale at https://shop.gr/sale. Also www.shop.gr/new, and (http://x.gr/a_(b)) or http://y.gr/p)! xhttps://no.gr https://";
        let found: Vec<&str> = find(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(found, ["https://shop.gr/sale", "www.shop.gr/new", "http://x.gr/a_(b)", "http://y.gr/p"]);
        assert_eq!(find("HTTPS://A.GR/Προσφορά!"), vec![std::ops::Range { start: 0, end: 29 }]);
        assert!(find("no links here: 20.5% off, Mr.Smith").is_empty());
        assert_eq!(target("www.shop.gr"), "https://www.shop.gr");
        assert_eq!(target("http://shop.gr"), "http://shop.gr");
        assert_eq!(location("https://x.gr/Σ?a=1"), "https://x.gr/%CE%A3?a=1");
    }

    #[test]
    fn link_codes_are_unlike_unsubscribe_codes() {
        let k = CodeKey::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let lk = key(&k);
        let c = code(&lk, 42, 3);
        assert_eq!(c.len(), LINK_CODE_LEN);
        assert_eq!(decode(&lk, &c), Some((42, 3)));
        // An unsubscribe code read as a link code (or the reverse) names something else.
        assert_ne!(decode(&lk, &k.code(42 << 4 | 3)), Some((42, 3)));
        assert_ne!(k.message_id(&c), Some(42 << 4 | 3));
        assert_eq!(decode(&lk, "short"), None);
    }

    #[test]
    fn previews_and_people() {
        for bot in [
            None,
            Some(""),
            Some("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
            Some("WhatsApp/2.23.20.0 A"),
            Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
            Some("TelegramBot (like TwitterBot)"),
            Some("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
            Some("curl/8.5.0"),
        ] {
            assert!(is_preview_bot(bot), "{bot:?}");
        }
        for person in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
        ] {
            assert!(!is_preview_bot(Some(person)), "{person}");
        }
    }

    proptest! {
        #[test]
        fn every_link_code_leads_back(k0: u64, k1: u64, id in 1i64..(1 << 50), index in 0usize..MAX_LINKS) {
            let lk = key(&CodeKey::from_hex(&format!("{k0:016x}{k1:016x}")).unwrap());
            prop_assert_eq!(decode(&lk, &code(&lk, id, index)), Some((id, index)));
        }
    }
}
