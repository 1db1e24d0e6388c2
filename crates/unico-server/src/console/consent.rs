//! The customer page's Subscriptions card: each channel the application takes, the
//! customer's standing consent on it (when and from where it last changed), a button to
//! change it (recorded with the source `console`), and the latest changes.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use unico_core::{
    AppId, Application, Channel, CustomerId, Source, Subscription, SubscriptionChange,
};
use unico_store::subscriptions::HistoryEntry;

use super::location::redirect;
use super::pages::{AppPage, encode, failure, not_found};
use super::session::CsrfToken;
use super::timeline::{channel_badge, local_time};
use crate::error::ApiError;
use crate::extract::FormBody;
use crate::state::{AppState, now_ms};

/// Changes shown under the channels.
const HISTORY_SHOWN: usize = 10;

/// What the card shows.
pub struct Consent {
    pub channels: Vec<Channel>,
    pub standing: Vec<Subscription>,
    pub history: Vec<HistoryEntry>,
}

/// Reads the card's data (on a blocking thread's store).
pub fn load(
    s: &dyn unico_store::Store,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<Consent, unico_store::StoreError> {
    Ok(Consent {
        channels: s.schema(app)?.subscription_channels(),
        standing: s.subscriptions(app, customer_id)?,
        history: s.subscription_history(app, customer_id, HISTORY_SHOWN)?,
    })
}

/// The card (times in the application's zone).
pub fn card(app: &Application, base: &str, consent: &Consent, csrf: &CsrfToken) -> Markup {
    let when = |ms: i64| local_time(app, ms);
    let by_channel: HashMap<&Channel, &Subscription> =
        consent.standing.iter().map(|s| (&s.channel, s)).collect();
    html! {
        div class="card" id="subscriptions" {
            h2 class="card-title" { "Subscriptions" }
            table {
                thead { tr { th { "Channel" } th { "Consent" } th class="hide-narrow" { "Since" } th class="hide-narrow" { "Source" } th {} } }
                tbody {
                    @for ch in &consent.channels {
                        @let held = by_channel.get(ch);
                        tr {
                            td { (channel_badge(ch.as_str())) }
                            td {
                                @match held {
                                    Some(s) if s.subscribed => span class="pill ok" { "Subscribed" },
                                    Some(_) => span class="pill bad" { "Unsubscribed" },
                                    None => span class="hint" { "No consent recorded" },
                                }
                            }
                            td class="hide-narrow mono nowrap" { @if let Some(s) = held { (when(s.changed_at)) } }
                            td class="hide-narrow mono" { @if let Some(s) = held { (s.source.as_str()) } }
                            td class="nowrap" {
                                @let subscribed = held.is_some_and(|s| s.subscribed);
                                form method="post" action=(format!("{base}/subscriptions")) {
                                    (csrf)
                                    input type="hidden" name="channel" value=(ch.as_str());
                                    input type="hidden" name="subscribed" value=(if subscribed { "false" } else { "true" });
                                    @if subscribed {
                                        button type="submit" class="secondary" aria-label=(format!("Unsubscribe from {ch}")) { "Unsubscribe" }
                                    } @else {
                                        button type="submit" aria-label=(format!("Subscribe to {ch}")) { "Subscribe" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !consent.history.is_empty() {
                details {
                    summary { "Latest changes" }
                    table {
                        thead { tr { th { "Recorded" } th { "Channel" } th { "Change" } th class="hide-narrow" { "Stated at" } th { "Source" } } }
                        tbody {
                            @for h in &consent.history {
                                tr {
                                    td class="mono nowrap" { (when(h.recorded_at)) }
                                    td { (h.channel.as_str()) }
                                    td { (if h.subscribed { "subscribed" } else { "unsubscribed" }) }
                                    td class="hide-narrow mono nowrap" { (when(h.at)) }
                                    td class="mono" { (h.source.as_str()) }
                                }
                            }
                        }
                    }
                }
            }
            p class="hint" { "A change made here is recorded now, with the source console; the customer's latest statement on a channel stands." }
        }
    }
}

#[derive(Deserialize)]
pub struct ConsentForm {
    channel: String,
    subscribed: String,
}

/// A Subscribe / Unsubscribe button: records the change and goes back to the profile.
pub async fn change(
    State(state): State<AppState>,
    AppPage(app, _): AppPage,
    Path((_, customer_id)): Path<(String, String)>,
    FormBody(form): FormBody<ConsentForm>,
) -> Response {
    let Ok(cid) = CustomerId::parse(&customer_id) else {
        return not_found();
    };
    let channel = match Channel::parse(&form.channel) {
        Ok(c) => c,
        Err(e) => return ApiError::invalid("channel", e.to_string()).into_response(),
    };
    let subscribed = match form.subscribed.as_str() {
        "true" => true,
        "false" => false,
        _ => return ApiError::invalid("subscribed", "true or false").into_response(),
    };
    let now = now_ms();
    let change = SubscriptionChange {
        channel,
        subscribed,
        at: now,
        source: Source::console(),
    };
    let id = app.id;
    let back = format!(
        "/console/apps/{}/customers/{}",
        app.id,
        encode(cid.as_str())
    );
    match state
        .blocking(move |s| s.set_subscriptions(id, &cid, &[change], false, now))
        .await
    {
        Ok(_) => redirect(&back),
        Err(ApiError::NotFound(_)) => not_found(),
        // A channel the application does not take: the request is at fault.
        Err(e @ ApiError::InvalidParameter(_)) => e.into_response(),
        Err(e) => failure(e),
    }
}

/// Weeks the subscribers-over-time charts cover.
pub const WEEKS_SHOWN: usize = 13;
const WEEK_MS: i64 = 7 * 86_400_000;

/// Per channel, how many customers stood subscribed at each of `ends` (ascending epoch
/// ms), from their statements given grouped by customer and channel and ordered as the
/// latest-statement rule reads them (by `at`, then by recording): at each end, the last
/// statement made at or before it stands. Channels are listed in first-seen order.
pub fn subscribers_at(
    statements: &[(i64, Channel, bool, i64)],
    ends: &[i64],
) -> Vec<(Channel, Vec<u64>)> {
    let mut out: Vec<(Channel, Vec<u64>)> = Vec::new();
    let mut i = 0;
    while i < statements.len() {
        let (customer, channel) = (statements[i].0, &statements[i].1);
        let mut j = i;
        while j < statements.len() && statements[j].0 == customer && statements[j].1 == *channel {
            j += 1;
        }
        let group = &statements[i..j];
        let counts = match out.iter().position(|(c, _)| c == channel) {
            Some(k) => &mut out[k].1,
            None => {
                out.push((channel.clone(), vec![0; ends.len()]));
                &mut out.last_mut().expect("just pushed").1
            }
        };
        let mut next = 0;
        for (k, &end) in ends.iter().enumerate() {
            while next < group.len() && group[next].3 <= end {
                next += 1;
            }
            if next > 0 && group[next - 1].2 {
                counts[k] += 1;
            }
        }
        i = j;
    }
    out
}

/// The week ends the charts read (the last one is now) and where their first week starts.
pub fn week_ends(now: i64) -> (i64, Vec<i64>) {
    let start = now - WEEK_MS * WEEKS_SHOWN as i64;
    let ends = (1..=WEEKS_SHOWN as i64)
        .map(|w| start + w * WEEK_MS)
        .collect();
    (start, ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_standing_at_each_end_is_counted() {
        let email = Channel::parse("email").unwrap();
        let sms = Channel::parse("sms").unwrap();
        // Customer 1: subscribed at 10, unsubscribed at 30. Customer 2: a statement made
        // at 5 arriving after one made at 20 is read in time order: subscribed from 20.
        let statements = vec![
            (1, email.clone(), true, 10),
            (1, email.clone(), false, 30),
            (1, sms.clone(), true, 25),
            (2, email.clone(), false, 5),
            (2, email.clone(), true, 20),
        ];
        let got = subscribers_at(&statements, &[0, 10, 19, 20, 29, 30, 100]);
        assert_eq!(got[0], (email, vec![0, 1, 1, 2, 2, 1, 1]));
        assert_eq!(got[1], (sms, vec![0, 0, 0, 0, 1, 1, 1]));
    }
}
