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

/// Whether a link points where no recipient should be sent through us: this machine, a private
/// or link-local network, or a local name (`localhost`, `*.local`, `*.internal`, `*.home.arpa`).
/// A phone cannot open such a link, and through our redirect it would aim recipients' browsers
/// at their own routers and intranets (ARCHITECTURE.md, "Outbound addresses"). Hosts are read the
/// way browsers read them: percent-escapes and full-width characters decoded, IPv4 in any
/// WHATWG spelling (`2130706433`, `0x7f.1`, `0177.0.0.1`), IPv6 with IPv4 inside.
pub fn private_target(url: &str) -> bool {
    let url = target(url);
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = browser_host(host);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().and_then(|a| a.parse::<std::net::Ipv6Addr>().ok()).is_some_and(private_v6);
    }
    let name = host.split(':').next().unwrap_or("");
    let name = name.strip_suffix('.').unwrap_or(name);
    if name == "localhost" || [".localhost", ".local", ".internal", ".home.arpa"].iter().any(|s| name.ends_with(s)) {
        return true;
    }
    whatwg_ipv4(name).is_some_and(private_v4)
}

/// A host as a browser resolves it, as far as telling addresses apart needs: percent-escapes
/// decoded, full-width forms and ideographic full stops made ASCII, lower case.
fn browser_host(host: &str) -> String {
    let bytes = host.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded)
        .chars()
        .map(|c| match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            '\u{3002}' | '\u{ff61}' => '.',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The WHATWG URL standard's IPv4 parser: a host whose last label is a number is an address of
/// one to four parts, each decimal, `0x` hex or `0` octal, the last filling the remaining bytes.
/// `None` for a name (or a host a browser refuses to load).
fn whatwg_ipv4(host: &str) -> Option<std::net::Ipv4Addr> {
    let number = |part: &str| -> Option<u64> {
        let (digits, radix) = match part.get(..2) {
            Some("0x") => (&part[2..], 16),
            _ if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
            _ => (part, 10),
        };
        if digits.is_empty() {
            return (radix == 16).then_some(0);
        }
        // Longer than any address: refused by browsers, and u64 would overflow.
        if digits.len() > 32 {
            return None;
        }
        u64::from_str_radix(digits, radix).ok().filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let parts: Vec<&str> = host.split('.').collect();
    let last = parts.last().filter(|l| !l.is_empty())?;
    if number(last).is_none() && !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let values: Vec<u64> = parts.iter().map(|p| number(p)).collect::<Option<_>>()?;
    let (head, tail) = values.split_at(values.len() - 1);
    if head.iter().any(|v| *v > 255) || tail[0] >= 1u64 << (8 * (5 - values.len())) {
        return None;
    }
    let mut ip = tail[0];
    for (i, v) in head.iter().enumerate() {
        ip += v << (8 * (3 - i));
    }
    Some(std::net::Ipv4Addr::from(ip as u32))
}

fn private_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn private_v6(ip: std::net::Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || ip.to_ipv4_mapped().is_some_and(private_v4)
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

    #[test]
    fn private_targets_in_every_spelling() {
        for url in [
            "http://localhost/admin",
            "https://LOCALHOST.:8080",
            "http://printer.local/",
            "http://wiki.corp.internal/x",
            "http://127.0.0.1",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://0x7f000001",
            "http://%31%32%37.0.0.1/",
            "http://１２７．０．０．１/",
            "http://user:pw@10.0.0.1/",
            "http://192.168.1.1\\@example.com",
            "https://172.16.5.4:8443/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:192.168.0.1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
        ] {
            assert!(private_target(url), "{url}");
        }
        for url in [
            "https://shop.example.gr/sale",
            "www.shop.gr",
            "http://8.8.8.8/",
            "http://1.2.3.4.example.com/",
            "http://172.32.0.1/",
            "http://[2001:db8::1]/",
            "https://localhost.example.com/",
            "http://user@shop.gr:8080/10.0.0.1",
            "http://999.1.1.1/",
        ] {
            assert!(!private_target(url), "{url}");
        }
    }

    proptest! {
        /// Every spelling of an address browsers accept names the same address.
        #[test]
        fn every_ipv4_spelling_is_read_alike(ip: u32, style in 0usize..5) {
            let o = ip.to_be_bytes();
            let text = match style {
                0 => format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]),
                1 => ip.to_string(),
                2 => format!("0x{ip:x}"),
                3 => format!("0{:o}.{}.{}", o[0], o[1], u16::from_be_bytes([o[2], o[3]])),
                _ => format!("{}.0x{:x}", o[0], ip & 0x00ff_ffff),
            };
            prop_assert_eq!(whatwg_ipv4(&text), Some(std::net::Ipv4Addr::from(ip)), "{}", text);
            let url = format!("http://{text}/x");
            prop_assert_eq!(private_target(&url), private_v4(std::net::Ipv4Addr::from(ip)));
        }

        #[test]
        fn any_url_is_judged_without_panicking(s in crate::domain::fuzz::nasty_text(40)) {
            let _ = private_target(&s);
            let _ = private_target(&format!("http://{s}"));
        }
    }

    proptest! {
        #[test]
        fn every_link_code_leads_back(k0: u64, k1: u64, id in 1i64..(1 << 50), index in 0usize..MAX_LINKS) {
            let lk = key(&CodeKey::from_hex(&format!("{k0:016x}{k1:016x}")).unwrap());
            prop_assert_eq!(decode(&lk, &code(&lk, id, index)), Some((id, index)));
        }

        /// Any code someone types into the address bar decodes to something or nothing, never a crash.
        #[test]
        fn any_code_decodes_or_not(k0: u64, k1: u64, s in crate::domain::fuzz::nasty_text(14)) {
            let lk = key(&CodeKey::from_hex(&format!("{k0:016x}{k1:016x}")).unwrap());
            let _ = decode(&lk, &s);
        }

        /// URLs found in any text are in order, apart, on character boundaries, and are URLs.
        #[test]
        fn found_urls_are_well_formed(text in crate::domain::fuzz::nasty_text(80)) {
            let found = find(&text);
            let mut last = 0;
            for r in &found {
                prop_assert!(r.start >= last && r.start < r.end, "{:?} in {:?}", found, text);
                prop_assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
                let url = &text[r.clone()];
                prop_assert_eq!(url_len(url), Some(url.len()), "{:?}", url);
                prop_assert!(!url.contains(char::is_whitespace));
                last = r.end;
            }
            for u in found.iter().map(|r| target(&text[r.clone()])) {
                let loc = location(&u);
                prop_assert!(loc.bytes().all(|b| b.is_ascii_graphic()), "{:?}", loc);
                let scheme = |p: &str| loc.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
                prop_assert!(scheme("https://") || scheme("http://"), "{:?}", loc);
            }
            let _ = is_preview_bot(Some(&text));
        }
    }
}
