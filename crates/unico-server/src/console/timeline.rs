//! A customer's interactions on their console page: what the events say about them
//! (first and last seen, channels) and the timeline, newest first, in the application's
//! time zone, filterable by type and paged with "older events".

use maud::{Markup, html};
use unico_core::{Application, Event};
use unico_store::{Activity, EventPage};

use super::pages::encode;

/// A channel's label, coloured by a class for the well-known ones (no icon fonts: a dot
/// drawn by the style sheet).
pub(super) fn channel_badge(channel: &str) -> Markup {
    let class = match channel {
        "email" | "sms" | "push" | "whatsapp" | "web" | "app" | "pos" | "wallet" => channel,
        _ => "other",
    };
    html! { span class=(format!("channel ch-{class}")) { (channel) } }
}

/// The application's UTC offset at instant `ms`, in milliseconds (0 out of range).
pub fn offset_ms(app: &Application, ms: i64) -> i64 {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| i64::from(app.timezone.zone().to_offset(t).seconds()) * 1000)
        .unwrap_or(0)
}

/// `2026-11-28 23:02` in the application's zone: how the console shows every instant
/// (the page or the column says which zone, see [`zone_note`]).
pub fn local_time(app: &Application, ms: i64) -> String {
    if jiff::Timestamp::from_millisecond(ms).is_err() {
        return String::new();
    }
    let local = unico_core::time::format_datetime(ms + offset_ms(app, ms));
    local
        .get(..16)
        .map(|t| t.replace('T', " "))
        .unwrap_or(local)
}

/// [`local_time`] of an RFC 3339 instant as the API writes it (`created_at` of a customer
/// or a segment, a datetime field's value); the text itself if it is not one.
pub fn local_time_text(app: &Application, rfc3339: &str) -> String {
    match unico_core::time::parse_datetime(rfc3339) {
        Ok(ms) => local_time(app, ms),
        Err(_) => rfc3339.to_owned(),
    }
}

/// "Times in Europe/Madrid": said once per page or table that shows [`local_time`]s.
pub fn zone_note(app: &Application) -> String {
    format!("Times in {}", app.timezone.as_str())
}

/// The value of an `<input type="datetime-local">` showing instant `ms` in the
/// application's zone: to the minute, with seconds and milliseconds when the value has
/// them (so that saving the form unchanged keeps the value exactly).
pub fn local_input(app: &Application, ms: i64) -> String {
    let local = unico_core::time::format_datetime(ms + offset_ms(app, ms));
    // YYYY-MM-DDTHH:MM:SS.mmmZ
    let (minutes, seconds, millis) = (&local[..16], &local[17..19], &local[20..23]);
    if millis != "000" {
        format!("{minutes}:{seconds}.{millis}")
    } else if seconds != "00" {
        format!("{minutes}:{seconds}")
    } else {
        minutes.to_owned()
    }
}

/// The `step` an `<input type="datetime-local">` needs to hold [`local_input`]'s value
/// without the browser calling it invalid (none for whole minutes).
pub fn local_input_step(value: &str) -> Option<&'static str> {
    match value.len() {
        0..=16 => None,
        17..=19 => Some("1"),
        _ => Some("0.001"),
    }
}

/// The instant of a date and time without offset as a `datetime-local` input sends it
/// (`2026-07-01T12:00`, seconds optional), read as a wall-clock time in the application's
/// zone; in RFC 3339 UTC. `None` for any other text (an instant with `Z` or an offset, a
/// date alone), which is read as the API reads it. A time that the zone skips (a spring
/// DST gap) is taken after the gap, a repeated one (autumn) at its first occurrence.
pub fn from_local_input(app: &Application, text: &str) -> Option<String> {
    let text = text.trim();
    if text.len() < 16
        || text.ends_with(['Z', 'z'])
        || text.get(10..).is_none_or(|t| t.contains(['+', '-']))
    {
        return None;
    }
    let civil: jiff::civil::DateTime = text.replacen(' ', "T", 1).parse().ok()?;
    let instant = app.timezone.zone().to_timestamp(civil).ok()?;
    Some(unico_core::time::format_datetime(instant.as_millisecond()))
}

/// The profile's summary of the customer's events.
pub fn activity_line(app: &Application, a: &Activity) -> Markup {
    html! {
        div class="activity" {
            @if a.events == 0 {
                span class="muted" { "No interactions yet." }
            } @else {
                span { b { (a.events) } @if a.events == 1 { " interaction" } @else { " interactions" } }
                span { "first seen " b { (a.first_seen.map(|t| local_time(app, t)).unwrap_or_default()) } }
                span { "last seen " b { (a.last_seen.map(|t| local_time(app, t)).unwrap_or_default()) } }
                span class="channels" { @for c in &a.channels { (channel_badge(c.as_str())) " " } }
            }
        }
    }
}

fn properties(e: &Event) -> Markup {
    html! {
        @if !e.properties.is_empty() {
            dl class="props" {
                @for (k, v) in e.properties.as_map() {
                    dt { (k) }
                    dd class="mono" {
                        @match v {
                            serde_json::Value::String(s) => (s),
                            other => (other.to_string()),
                        }
                    }
                }
            }
        }
    }
}

/// The timeline card. `base` is the customer page's path, `types` the registered codes,
/// `chosen` the type filter, `list` the customer list's query to keep.
pub fn timeline_card(
    app: &Application,
    base: &str,
    page: &EventPage,
    types: &[String],
    chosen: Option<&str>,
    list: &str,
) -> Markup {
    let keep = |extra: &str| {
        let mut q = String::from("?tab=timeline");
        if let Some(t) = chosen {
            q.push_str(&format!("&type={}", encode(t)));
        }
        q.push_str(extra);
        if let Some(rest) = list.strip_prefix('?') {
            q.push('&');
            q.push_str(rest);
        }
        q
    };
    html! {
        div class="card" id="timeline" {
            form method="get" action=(base) class="row" {
                input type="hidden" name="tab" value="timeline";
                label for="event-type" { "Event type" }
                select id="event-type" name="type" data-autosubmit {
                    option value="" selected[chosen.is_none()] { "All types" }
                    @for t in types {
                        option value=(t) selected[chosen == Some(t.as_str())] { (t) }
                    }
                }
                noscript { button type="submit" { "Show" } }
                span class="grow" {}
                span class="hint" { "Times in " (app.timezone.as_str()) }
            }
            @if page.events.is_empty() {
                p class="muted" { "No interactions to show." }
            } @else {
                ol class="timeline" {
                    @for e in &page.events {
                        li {
                            time class="mono" datetime=(unico_core::time::format_datetime(e.timestamp)) { (local_time(app, e.timestamp)) }
                            span class="event-type" { (e.event_type.as_str()) }
                            (channel_badge(e.channel.as_str()))
                            @if let Some(d) = &e.device_id { span class="hint mono" { "device " (d) } }
                            (properties(e))
                        }
                    }
                }
            }
            @if let Some((ts, id)) = page.next {
                p { a class="button secondary" href=(format!("{base}{}", keep(&format!("&before={ts}_{id}")))) { "Older interactions →" } }
            }
        }
    }
}
