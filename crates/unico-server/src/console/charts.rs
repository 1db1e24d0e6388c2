//! Charts as SVG, rendered on the server with maud (so every label is escaped): horizontal
//! bars for shares (fill rate, top values) and columns for distributions (numbers and
//! instants in equal-width buckets), with axes, ticks and labels.
//!
//! Bars lay out in percentages of the chart's width with text in pixels, so they stay
//! legible at any width; column charts scale with a `viewBox`.

use maud::{Markup, html};
use unico_core::time::{civil_from_days, format_date};

/// One horizontal bar: a label, its count, and its share of `of`.
pub struct Share<'a> {
    pub label: &'a str,
    pub count: u64,
    pub of: u64,
}

const ROW: u32 = 28;

/// Horizontal bars, one per share: label on the left, bar in the middle, count and
/// percentage on the right.
pub fn shares(title: &str, items: &[Share<'_>]) -> Markup {
    shares_linked(title, items, |_| None)
}

/// [`shares`] where a bar may lead somewhere: `link(i)` is where bar `i` goes (the whole
/// row is the link, so it can be clicked and reached with the keyboard).
pub fn shares_linked(
    title: &str,
    items: &[Share<'_>],
    link: impl Fn(usize) -> Option<String>,
) -> Markup {
    let height = ROW * items.len().max(1) as u32;
    // A chart whose bars are links is a group of links, not a picture: an image holds
    // nothing to press.
    let linked = (0..items.len()).any(|i| link(i).is_some());
    html! {
        svg class="chart" role=(if linked { "group" } else { "img" }) width="100%" height=(height) aria-label=(title) {
            title { (title) }
            @for (i, item) in items.iter().enumerate() {
                @let y = ROW * i as u32;
                @let pct = if item.of == 0 { 0.0 } else { item.count as f64 * 100.0 / item.of as f64 };
                @let bar = html! {
                    title { (item.label) ": " (item.count) " of " (item.of) }
                    text x="0" y=(y + 18) class="label" { (ellipsis(item.label, 18)) }
                    rect x="36%" y=(y + 7) width="34%" height="14" rx="3" class="track" {}
                    rect x="36%" y=(y + 7) width=(format!("{:.2}%", pct * 0.34)) height="14" rx="3" class="fill" {}
                    text x="100%" y=(y + 18) text-anchor="end" class="value" { (compact(item.count)) " · " (percent(pct)) }
                };
                @match link(i) {
                    Some(href) => {
                        // Named by what it shows (its label, count and share), as read.
                        a class="drill" href=(href) {
                            rect x="0" y=(y) width="100%" height=(ROW) class="hit" {}
                            (bar)
                        }
                    }
                    None => { g { (bar) } }
                }
            }
        }
    }
}

/// How the buckets of a column chart are labelled.
#[derive(Clone, Copy)]
pub enum Scale {
    /// Plain numbers.
    Number,
    /// Epoch milliseconds, shown as dates.
    Time,
}

/// Equal-width buckets: bucket `i` spans `start + i·width` to `start + (i+1)·width`.
pub struct Buckets {
    pub start: f64,
    pub width: f64,
    pub counts: Vec<u64>,
    pub scale: Scale,
}

const W: f64 = 480.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 34.0;

/// A column chart of buckets with a y axis of counts and x ticks at bucket edges.
pub fn columns(title: &str, buckets: &Buckets) -> Markup {
    columns_linked(title, buckets, |_| None)
}

/// [`columns`] where a column may lead somewhere: `link(i)` is where bucket `i` goes.
pub fn columns_linked(
    title: &str,
    buckets: &Buckets,
    link: impl Fn(usize) -> Option<String>,
) -> Markup {
    let n = buckets.counts.len().max(1);
    let max = buckets.counts.iter().copied().max().unwrap_or(0);
    let top = nice_ceiling(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let col_w = plot_w / n as f64;
    let y_of = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    // At most 6 x labels, at evenly spaced bucket edges.
    let every = n.div_ceil(6).max(1);
    let linked = (0..buckets.counts.len()).any(|i| buckets.counts[i] > 0 && link(i).is_some());
    html! {
        svg class="chart" role=(if linked { "group" } else { "img" }) viewBox=(format!("0 0 {W} {H}")) width="100%" aria-label=(title) {
            title { (title) }
            @for k in 0..=4u64 {
                @let v = top * k / 4;
                @let y = y_of(v);
                line x1=(LEFT) x2=(W - RIGHT) y1=(fmt(y)) y2=(fmt(y)) class=(if k == 0 { "axis" } else { "grid" }) {}
                text x=(LEFT - 6.0) y=(fmt(y + 4.0)) text-anchor="end" class="tick" { (axis_count(v, top)) }
            }
            @for (i, &count) in buckets.counts.iter().enumerate() {
                @let x = LEFT + col_w * i as f64;
                @let y = y_of(count);
                @let column = html! {
                    rect x=(fmt(x + col_w * 0.08)) y=(fmt(y)) width=(fmt(col_w * 0.84)) height=(fmt(TOP + plot_h - y)) class="fill" {
                        title { (bucket_label(buckets, i)) ": " (count) }
                    }
                };
                @match link(i).filter(|_| count > 0) {
                    Some(href) => {
                        a class="drill" href=(href) aria-label=(format!("{}: {}, show them", bucket_label(buckets, i), super::imports::plural(count, "customer"))) {
                            rect x=(fmt(x)) y=(TOP) width=(fmt(col_w)) height=(fmt(plot_h)) class="hit" {}
                            (column)
                        }
                    }
                    None => { (column) }
                }
            }
            @for i in (0..=n).step_by(every) {
                @let x = LEFT + col_w * i as f64;
                line x1=(fmt(x)) x2=(fmt(x)) y1=(TOP + plot_h) y2=(TOP + plot_h + 4.0) class="axis" {}
                text x=(fmt(x)) y=(fmt(TOP + plot_h + 18.0)) text-anchor=(if i == 0 { "start" } else if i == n { "end" } else { "middle" }) class="tick" {
                    (edge_label(buckets, buckets.start + buckets.width * i as f64))
                }
            }
        }
    }
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

/// The smallest "round" number (1, 2, 2.5, 5 × 10ⁿ) at or above `max`, at least 4, so
/// that four gridlines fall on whole numbers.
fn nice_ceiling(max: u64) -> u64 {
    if max <= 4 {
        return 4;
    }
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= max {
        magnitude *= 10;
    }
    for m in [1u64, 2, 4, 5, 8, 10] {
        let candidate = m.saturating_mul(magnitude);
        if candidate >= max && candidate % 4 == 0 {
            return candidate;
        }
    }
    (max.div_ceil(4)) * 4
}

/// A step for about `target` equal buckets over `lo..=hi`: 1, 2 or 5 × 10ⁿ.
pub fn number_step(lo: f64, hi: f64, target: usize) -> f64 {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude)
}

const HOUR: f64 = 3_600_000.0;
const DAY: f64 = 24.0 * HOUR;
/// The mean Gregorian year, so that yearly buckets stay on 1 January.
const YEAR: f64 = 365.2425 * DAY;

/// A step for about `target` buckets over instants: hours, days, weeks, 30 days,
/// quarters (91 days) or whole years.
pub fn time_step(lo: f64, hi: f64, target: usize) -> f64 {
    let raw = (hi - lo) / target.max(1) as f64;
    [
        HOUR,
        6.0 * HOUR,
        DAY,
        7.0 * DAY,
        30.0 * DAY,
        91.0 * DAY,
        YEAR,
    ]
    .into_iter()
    .find(|&s| s >= raw)
    .unwrap_or_else(|| (raw / YEAR).ceil() * YEAR)
}

/// Buckets covering `lo..=hi` with `step`, starting at a multiple of the step (for
/// yearly steps, on 1 January of `lo`'s year).
pub fn layout(lo: f64, hi: f64, step: f64) -> (f64, usize) {
    let start = if step >= YEAR {
        let (y, _, _) = civil_from_days(days(lo));
        f64::from(unico_core::time::days_from_civil(y, 1, 1)) * DAY
    } else {
        (lo / step).floor() * step
    };
    let n = (((hi - start) / step).floor() as usize + 1).clamp(1, 400);
    (start, n)
}

fn edge_label(buckets: &Buckets, x: f64) -> String {
    match buckets.scale {
        Scale::Number => {
            // In thousands when the axis reaches 10 000, so that edges read alike.
            let end = buckets.start + buckets.width * buckets.counts.len() as f64;
            let big = end.abs().max(buckets.start.abs()) >= 10_000.0;
            if big && x.abs() < 1e15 && (x / 100.0).fract() == 0.0 {
                format!("{}k", number(x / 1000.0))
            } else {
                number(x)
            }
        }
        Scale::Time => date_label(x, buckets.width),
    }
}

fn bucket_label(buckets: &Buckets, i: usize) -> String {
    let lo = buckets.start + buckets.width * i as f64;
    let hi = lo + buckets.width;
    match buckets.scale {
        Scale::Number => format!("{} to {}", number(lo), number(hi)),
        Scale::Time if buckets.width < DAY => format!("from {}", date_label(lo, buckets.width)),
        Scale::Time if buckets.width >= YEAR => {
            let year = |ms: f64| civil_from_days(days(ms + DAY)).0;
            let (first, last) = (year(lo), year(hi) - 1);
            if first == last {
                first.to_string()
            } else {
                format!("{first} to {last}")
            }
        }
        Scale::Time => format!(
            "{} to {}",
            format_date(days(lo + DAY / 2.0)),
            format_date(days(hi - DAY / 2.0))
        ),
    }
}

fn days(ms: f64) -> i32 {
    (ms / DAY).floor() as i32
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A date short enough for an axis: `2026` for yearly steps, `4 Mar 2026` for months and
/// quarters, `4 Mar` for days and weeks, `4 Mar 06:00` below a day.
fn date_label(ms: f64, step: f64) -> String {
    if step >= YEAR {
        // Yearly edges fall within a day of 1 January.
        let (y, _, _) = civil_from_days(days(ms + DAY));
        return y.to_string();
    }
    let (y, m, d) = civil_from_days(days(ms));
    let month = MONTHS[(m as usize).clamp(1, 12) - 1];
    if step >= 30.0 * DAY {
        format!("{d} {month} {y}")
    } else if step >= DAY {
        format!("{d} {month}")
    } else {
        let hour = ((ms - f64::from(days(ms)) * DAY) / HOUR).floor() as u32;
        format!("{d} {month} {hour:02}:00")
    }
}

/// A number for a label: integers as such, others with up to 2 decimals.
pub fn number(x: f64) -> String {
    if x.abs() >= 1e15 {
        return format!("{x:e}");
    }
    if x == x.trunc() {
        return compact_signed(x as i64);
    }
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn compact_signed(v: i64) -> String {
    if v < 0 {
        format!("-{}", compact(v.unsigned_abs()))
    } else {
        compact(v as u64)
    }
}

/// A count on the y axis, in the unit of the axis' top so that ticks read alike
/// (`0, 5k, 10k, 15k, 20k`, not `0, 5000, 10k`).
fn axis_count(v: u64, top: u64) -> String {
    match top {
        0..=9_999 => v.to_string(),
        10_000..=9_999_999 => trim(format!("{:.1}", v as f64 / 1e3)) + "k",
        _ => trim(format!("{:.2}", v as f64 / 1e6)) + "M",
    }
}

/// `950`, `12.3k`, `4.5M`.
pub fn compact(v: u64) -> String {
    match v {
        0..=9_999 => v.to_string(),
        10_000..=999_999 => trim(format!("{:.1}", v as f64 / 1e3)) + "k",
        1_000_000..=999_999_999 => trim(format!("{:.2}", v as f64 / 1e6)) + "M",
        _ => trim(format!("{:.2}", v as f64 / 1e9)) + "G",
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn percent(p: f64) -> String {
    if p > 0.0 && p < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

fn ellipsis(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_and_cover_the_range() {
        assert_eq!(number_step(18.0, 80.0, 12), 10.0);
        assert_eq!(number_step(0.0, 12_000.0, 12), 1000.0);
        assert_eq!(number_step(0.0, 1.0, 12), 0.1);
        assert_eq!(
            number_step(5.0, 5.0, 12),
            1.0,
            "a single value still gets a bucket"
        );
        let (start, n) = layout(18.0, 80.0, 10.0);
        assert_eq!((start, n), (10.0, 8), "10..90 in 8 buckets holds 18 and 80");
        assert_eq!(time_step(0.0, 90.0 * DAY, 20), 7.0 * DAY);
        assert_eq!(time_step(0.0, 4.0 * 365.0 * DAY, 20), 91.0 * DAY);
        assert_eq!(time_step(0.0, 6.0 * 365.0 * DAY, 20), YEAR);
        let jan_1990 = f64::from(unico_core::time::days_from_civil(1990, 1, 1)) * DAY;
        let (start, n) = layout(jan_1990 + 40.0 * DAY, jan_1990 + 30.0 * YEAR, YEAR);
        assert_eq!(
            (start, n),
            (jan_1990, 31),
            "yearly buckets start on 1 January"
        );
        assert_eq!(date_label(start + 8.0 * YEAR, YEAR), "1998");
    }

    #[test]
    fn labels_are_short_and_exact() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(12_340), "12.3k");
        assert_eq!(compact(1_000_000), "1M");
        assert_eq!(compact(76_402), "76.4k");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(-3000.0), "-3000");
        assert_eq!(nice_ceiling(3), 4);
        assert_eq!(nice_ceiling(76_402), 80_000);
        assert_eq!(nice_ceiling(130), 200);
        let ms = f64::from(unico_core::time::days_from_civil(2026, 3, 4)) * DAY;
        assert_eq!(date_label(ms, 30.0 * DAY), "4 Mar 2026");
        assert_eq!(axis_count(5_000, 20_000), "5k");
        assert_eq!(axis_count(7_500, 10_000), "7.5k");
        assert_eq!(axis_count(750, 1_000), "750");
        assert_eq!(date_label(ms, DAY), "4 Mar");
        assert_eq!(date_label(ms + 6.0 * HOUR, HOUR), "4 Mar 06:00");
        assert_eq!(percent(0.26), "0.3%");
        assert_eq!(percent(42.4), "42%");
    }

    #[test]
    fn charts_escape_their_labels() {
        let markup = shares(
            "Top <values>",
            &[Share {
                label: "<script>alert(1)</script>",
                count: 3,
                of: 4,
            }],
        )
        .into_string();
        assert!(!markup.contains("<script>"), "{markup}");
        assert!(markup.contains("&lt;script&gt;"));
        assert!(markup.contains("75%"));
        let markup = columns(
            "Age",
            &Buckets {
                start: 10.0,
                width: 10.0,
                counts: vec![1, 5, 0, 2],
                scale: Scale::Number,
            },
        )
        .into_string();
        assert_eq!(markup.matches("class=\"fill\"").count(), 4);
        assert!(markup.contains(">20 to 30: 5<"), "{markup}");
        assert!(markup.contains(">50<"), "the last edge is labelled");
    }
}
