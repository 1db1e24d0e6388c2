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
        source: Source::parse("console").unwrap_or_else(|_| Source::api()),
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
