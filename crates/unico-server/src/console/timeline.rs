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

/// `2026-11-28 23:02` in the application's zone.
pub fn local_time(app: &Application, ms: i64) -> String {
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    let offset_ms = i64::from(app.timezone.zone().to_offset(t).seconds()) * 1000;
    super::pages::short_time(&unico_core::time::format_datetime(ms + offset_ms))
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
