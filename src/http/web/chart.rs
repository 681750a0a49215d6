//! The campaign page's chart of sends, deliveries and clicks over time: an SVG drawn on the
//! server from the report's hourly series (`store::report`), so it needs no script and no
//! library. Colours come from the stylesheet (classes), since the page's policy forbids inline style.

use super::tz::Zone;
use crate::domain::time::parse_rfc3339;
use serde_json::Value;
use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 28.0;
/// More hours than this are drawn in buckets of several hours, so a bar stays visible.
const MAX_BARS: usize = 72;

/// One bar group: when it starts and its three counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub at: i64,
    pub sends: i64,
    pub deliveries: i64,
    pub clicks: i64,
}

/// The report's `series` as buckets of `ceil(hours / MAX_BARS)` hours each.
pub fn buckets(series: &Value) -> Vec<Bucket> {
    let hours: Vec<Bucket> = series
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            Some(Bucket {
                at: parse_rfc3339(h["hour"].as_str()?)?,
                sends: h["sends"].as_i64().unwrap_or(0),
                deliveries: h["deliveries"].as_i64().unwrap_or(0),
                clicks: h["clicks"].as_i64().unwrap_or(0),
            })
        })
        .collect();
    let per = hours.len().div_ceil(MAX_BARS).max(1);
    hours
        .chunks(per)
        .map(|c| Bucket {
            at: c[0].at,
            sends: c.iter().map(|b| b.sends).sum(),
            deliveries: c.iter().map(|b| b.deliveries).sum(),
            clicks: c.iter().map(|b| b.clicks).sum(),
        })
        .collect()
}

/// The words the chart needs, in the page's language.
pub struct Labels<'a> {
    pub title: &'a str,
    pub sends: &'a str,
    pub deliveries: &'a str,
    pub clicks: &'a str,
}

/// The chart as SVG markup (every text escaped), or `None` when there is nothing to draw.
pub fn svg(buckets: &[Bucket], zone: &Zone, words: &Labels<'_>, int: impl Fn(i64) -> String) -> Option<String> {
    let top = buckets.iter().map(|b| b.sends.max(b.deliveries).max(b.clicks)).max().filter(|m| *m > 0)?;
    let scale = nice_ceiling(top);
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    // At most 48 px per group, so a one-hour campaign is a group of bars, not a wall.
    let slot = (plot_w / buckets.len() as f64).min(48.0);
    let bar = slot * 0.26;
    let y = |v: i64| TOP + plot_h - (v as f64 / scale as f64) * plot_h;
    let total = |f: fn(&Bucket) -> i64| int(buckets.iter().map(f).sum());
    let first = buckets.first().map(|b| zone.minute(b.at)).unwrap_or_default();
    let last = buckets.last().map(|b| zone.minute(b.at)).unwrap_or_default();
    let desc = format!(
        "{}: {}, {}: {}, {}: {} ({first} – {last}, {})",
        words.sends,
        total(|b| b.sends),
        words.deliveries,
        total(|b| b.deliveries),
        words.clicks,
        total(|b| b.clicks),
        zone.name
    );
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="report-chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title chart-desc" data-bars="{}">"#,
        buckets.len()
    );
    let _ = write!(s, r#"<title id="chart-title">{}</title><desc id="chart-desc">{}</desc>"#, esc(words.title), esc(&desc));
    for (i, v) in [0, scale / 2, scale].into_iter().enumerate() {
        let yy = y(v);
        let _ = write!(s, r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/>"#, W - RIGHT);
        // The middle label only when it is a whole number.
        if i != 1 || scale % 2 == 0 {
            let _ = write!(s, r#"<text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, yy + 4.0, esc(&int(v)));
        }
    }
    for (i, b) in buckets.iter().enumerate() {
        let x0 = LEFT + i as f64 * slot + (slot - 3.0 * bar) / 2.0;
        for (k, (class, v)) in [("b-sends", b.sends), ("b-deliveries", b.deliveries), ("b-clicks", b.clicks)].into_iter().enumerate() {
            if v > 0 {
                let (top_y, x) = (y(v), x0 + k as f64 * bar);
                let _ = write!(
                    s,
                    r#"<rect class="{class}" x="{x:.1}" y="{top_y:.1}" width="{:.1}" height="{:.1}"/>"#,
                    (bar - 1.0).max(0.5),
                    TOP + plot_h - top_y
                );
            }
        }
    }
    let base = H - 8.0;
    let _ = write!(s, r#"<text class="axis" x="{LEFT}" y="{base}">{}</text>"#, esc(&first));
    if buckets.len() > 1 {
        let _ = write!(s, r#"<text class="axis" x="{}" y="{base}" text-anchor="end">{}</text>"#, W - RIGHT, esc(&last));
    }
    s.push_str("</svg>");
    Some(s)
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `v`: round numbers on the axis.
fn nice_ceiling(v: i64) -> i64 {
    let mut p = 1;
    loop {
        for m in [1, 2, 5] {
            if m * p >= v {
                return m * p;
            }
        }
        p *= 10;
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn draws_bars_for_each_hour_and_escapes_words() {
        let series = json!([
            {"hour": "2026-12-07T10:00:00.000Z", "sends": 120, "deliveries": 100, "clicks": 0},
            {"hour": "2026-12-07T11:00:00.000Z", "sends": 0, "deliveries": 20, "clicks": 3},
        ]);
        let b = buckets(&series);
        assert_eq!(b.len(), 2);
        let words = Labels { title: "Sends <& more>", sends: "Sent", deliveries: "Delivered", clicks: "Clicks" };
        let svg = svg(&b, &Zone::utc(), &words, |n| n.to_string()).unwrap();
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains("Sends &lt;&amp; more&gt;"));
        assert!(svg.contains("Sent: 120, Delivered: 120, Clicks: 3 (2026-12-07 10:00 – 2026-12-07 11:00, UTC)"), "{svg}");
        assert!(svg.contains(">200</text>"), "the axis ends at a round number: {svg}");
        assert_eq!(super::svg(&[], &Zone::utc(), &words, |n| n.to_string()), None);
    }

    #[test]
    fn long_series_are_bucketed() {
        let series: Vec<Value> = (0..200)
            .map(|h| json!({"hour": crate::domain::time::rfc3339(h * 3_600_000), "sends": 1, "deliveries": 0, "clicks": 0}))
            .collect();
        let b = buckets(&json!(series));
        assert_eq!(b.len(), 67);
        assert_eq!(b.iter().map(|x| x.sends).sum::<i64>(), 200);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(120), 200);
        assert_eq!(nice_ceiling(1), 1);
    }
}
