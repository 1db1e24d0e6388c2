//! What customers did: for the application (the Interactions page) or a segment's members,
//! events per day over the last 90 days, events by type and by channel, and the share of
//! the customers active in the last 7, 30 and 90 days. Days are the application's.

use maud::{Markup, html};
use unico_core::Application;
use unico_engine::{AppIndex, Members, activity::EventActivity};

use super::charts::{self, Buckets, Scale, Share};

/// Days the per-day chart covers.
pub const DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;

/// A set of customers' activity, ready to draw.
pub struct Behaviour {
    pub customers: u64,
    /// Local midnight of the first day, as a wall-clock time (the instant shifted by the
    /// zone's offset), for the chart's date labels.
    pub first_day_local: i64,
    pub activity: EventActivity,
}

/// The local midnight of the day holding `ms` in the application's zone.
fn local_midnight(app: &Application, ms: i64) -> i64 {
    let zone = app.timezone.zone();
    let offset = |t: i64| {
        jiff::Timestamp::from_millisecond(t)
            .map(|t| i64::from(zone.to_offset(t).seconds()) * 1000)
            .unwrap_or(0)
    };
    let local = ms + offset(ms);
    let midnight_local = local - local.rem_euclid(DAY_MS);
    // The instant of that local midnight (the offset at midnight, which DST may change).
    midnight_local - offset(midnight_local - offset(ms))
}

/// The activity of `members` up to `now`.
pub fn summarize(app: &Application, index: &AppIndex, members: &Members, now: i64) -> Behaviour {
    let today = local_midnight(app, now);
    let starts: Vec<i64> = (0..DAYS)
        .rev()
        .map(|d| local_midnight(app, today - d * DAY_MS + DAY_MS / 2))
        .collect();
    let since = [now - 7 * DAY_MS, now - 30 * DAY_MS, now - 90 * DAY_MS];
    Behaviour {
        customers: members.len(),
        first_day_local: starts[0] + super::timeline::offset_ms(app, starts[0]),
        activity: index.event_activity(members, &starts, &since, now),
    }
}

/// The charts of one set of customers' activity.
pub fn render(b: &Behaviour) -> Markup {
    let a = &b.activity;
    let total: u64 = a.per_bucket.iter().sum();
    let active: Vec<Share<'_>> = ["Last 7 days", "Last 30 days", "Last 90 days"]
        .iter()
        .zip(&a.active_since)
        .map(|(label, &count)| Share {
            label,
            count,
            of: b.customers,
        })
        .collect();
    let mut types: Vec<(&str, u64)> = a.by_type.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    types.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    let mut channels: Vec<(&str, u64)> =
        a.by_channel.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    channels.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    html! {
        @if total == 0 && a.active_since.iter().all(|&n| n == 0) {
            div class="card" { p class="muted" { "No interactions in the last " (DAYS) " days." } }
        } @else {
            div class="charts" {
                div class="card chart-card" {
                    h2 { "Events per day" }
                    p class="hint" { (charts::compact(total)) " events in the last " (DAYS) " days" }
                    (charts::columns("Events per day", &Buckets {
                        start: b.first_day_local as f64,
                        width: DAY_MS as f64,
                        counts: a.per_bucket.clone(),
                        scale: Scale::Time,
                    }))
                }
                div class="card chart-card" {
                    h2 { "Active customers" }
                    p class="hint" { "with at least one interaction, of " (charts::compact(b.customers)) }
                    (charts::shares("Active customers", &active))
                }
                div class="card chart-card" {
                    h2 { "Top event types" }
                    p class="hint" { "events in the last " (DAYS) " days" }
                    (charts::shares("Top event types", &types.iter().take(10).map(|(label, count)| Share { label, count: *count, of: total }).collect::<Vec<_>>()))
                }
                div class="card chart-card" {
                    h2 { "Channels" }
                    p class="hint" { "events in the last " (DAYS) " days" }
                    (charts::shares("Channels", &channels.iter().map(|(label, count)| Share { label, count: *count, of: total }).collect::<Vec<_>>()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use unico_core::{AppId, AppName, TimeZoneName};

    use super::*;

    fn app(tz: &str) -> Application {
        Application {
            id: AppId(1),
            name: AppName::parse("a").unwrap(),
            timezone: TimeZoneName::parse(tz).unwrap(),
            created_at: 0,
        }
    }

    #[test]
    fn days_start_at_the_applications_midnight() {
        // 2026-07-01T10:00Z is 12:00 in Madrid (UTC+2): the day began at 2026-06-30T22:00Z.
        let at = 1_782_900_000_000;
        assert_eq!(local_midnight(&app("UTC"), at), 1_782_864_000_000);
        assert_eq!(local_midnight(&app("Europe/Madrid"), at), 1_782_856_800_000);
        // 2026-01-15T23:30Z is already the 16th in Madrid (UTC+1): midnight 2026-01-15T23:00Z.
        assert_eq!(
            local_midnight(&app("Europe/Madrid"), 1_768_519_800_000),
            1_768_518_000_000
        );
    }
}
