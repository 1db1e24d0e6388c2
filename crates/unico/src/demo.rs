//! `serve --demo`: a realistic sample application for a store that has none, so a new
//! user sees a populated product at once. Deterministic: the same count gives the same
//! customers (dates move with today).

use anyhow::Context;
use unico_core::time::days_from_civil;
use unico_core::{AppName, CustomerId, FieldChange, FieldName, FieldType, TimeZoneName, Value};
use unico_store::{Store, UpsertItem};

pub struct Demo {
    pub app_id: i64,
    pub name: String,
    pub customers: usize,
    pub api_key: String,
}

/// SplitMix64: tiny, fast, good enough for sample data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    /// Picks with weights falling off like 1/rank, as real name and city counts do.
    fn zipf<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let total: f64 = (1..=items.len()).map(|r| 1.0 / r as f64).sum();
        let mut x = (self.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        for (i, item) in items.iter().enumerate() {
            x -= 1.0 / (i + 1) as f64;
            if x <= 0.0 {
                return item;
            }
        }
        items[items.len() - 1]
    }
}

const FIRST: &[&str] = &[
    "Lucía",
    "Hugo",
    "María",
    "Martín",
    "Sofía",
    "Pablo",
    "Julia",
    "Daniel",
    "Paula",
    "Alejandro",
    "Emma",
    "Mateo",
    "Carmen",
    "Leo",
    "Ana",
    "Manuel",
    "Olivia",
    "Javier",
    "Chloé",
    "Noah",
    "Inés",
    "Marco",
    "Giulia",
    "Lukas",
    "Zoë",
    "Thiago",
    "Amélie",
    "Jonas",
    "Elena",
    "Iker",
];
const LAST: &[&str] = &[
    "García",
    "Fernández",
    "González",
    "Rodríguez",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Rossi",
    "Müller",
    "Dubois",
    "Silva",
    "Smith",
    "O'Brien",
    "Nguyen",
];
const PLACES: &[(&str, &[&str])] = &[
    (
        "ES",
        &[
            "Madrid",
            "Barcelona",
            "Valencia",
            "Sevilla",
            "Málaga",
            "Bilbao",
            "Zaragoza",
            "A Coruña",
            "Palma",
            "Alicante",
        ],
    ),
    ("FR", &["Paris", "Lyon", "Marseille", "Toulouse", "Nice"]),
    ("PT", &["Lisboa", "Porto", "Braga"]),
    ("IT", &["Roma", "Milano", "Napoli", "Torino"]),
    ("DE", &["Berlin", "München", "Hamburg", "Köln"]),
    ("GB", &["London", "Manchester", "Edinburgh"]),
    ("MX", &["Ciudad de México", "Guadalajara", "Monterrey"]),
    (
        "US",
        &["New York", "Los Angeles", "Washington, D.C.", "Miami"],
    ),
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "hotmail.com",
    "yahoo.es",
    "outlook.com",
    "icloud.com",
];

const FIELDS: &[(&str, FieldType)] = &[
    ("email", FieldType::String),
    ("first_name", FieldType::String),
    ("last_name", FieldType::String),
    ("city", FieldType::String),
    ("country", FieldType::String),
    ("gender", FieldType::String),
    ("tier", FieldType::String),
    ("age", FieldType::Number),
    ("lifetime_value", FieldType::Number),
    ("orders", FieldType::Number),
    ("birthdate", FieldType::Date),
    ("signup_at", FieldType::Datetime),
    ("last_purchase_at", FieldType::Datetime),
];

fn ascii_lower(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'á' | 'à' | 'Á' => 'a',
            'é' | 'è' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'ü' | 'Ú' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            'ë' => 'e',
            c => c.to_ascii_lowercase(),
        })
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Creates the demo application unless the store already holds an application.
/// Demo customers written per transaction (each stamped with the group's latest signup).
const DEMO_GROUP: usize = 50;
/// Customers whose demo consent is written per commit.
const CONSENT_GROUP: usize = 1000;

pub fn create_if_empty(store: &dyn Store, customers: usize) -> anyhow::Result<Option<Demo>> {
    if !store.list_apps()?.is_empty() {
        return Ok(None);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let name = "Demo Shop";
    let app = store.create_app(
        &AppName::parse(name)?,
        &TimeZoneName::parse("Europe/Madrid")?,
        now,
    )?;
    let mut ids = Vec::new();
    for (field, ty) in FIELDS {
        ids.push(
            store
                .create_field(app.id, &FieldName::parse(field)?, *ty, now)?
                .id,
        );
    }
    let (this_year, _, _) = unico_core::time::civil_from_days((now / 86_400_000) as i32);
    let mut rng = Rng(42);
    let mut batch = Vec::new();
    let mut orders_of = Vec::with_capacity(customers);
    for n in 0..customers {
        let first = rng.zipf(FIRST);
        let last = rng.zipf(LAST);
        let (country, cities) = if rng.chance(0.55) {
            PLACES[0]
        } else {
            PLACES[1 + rng.below(PLACES.len() as u64 - 1) as usize]
        };
        let email = format!(
            "{}.{}{}@{}",
            ascii_lower(first),
            ascii_lower(last),
            n,
            rng.pick(DOMAINS)
        );
        let customer_id = if rng.chance(0.8) {
            format!("c{:07}", 100_000 + n * 7)
        } else {
            email.clone()
        };
        let age = 18 + rng.below(60) as i32;
        let month = 1 + rng.below(12) as u32;
        let day = 1 + rng.below(u64::from(unico_core::time::days_in_month(
            this_year - age,
            month,
        ))) as u32;
        let birth = days_from_civil(this_year - age, month, day);
        let tier = match rng.below(100) {
            0..=59 => "bronze",
            60..=84 => "silver",
            85..=96 => "gold",
            _ => "platinum",
        };
        let signup_days_ago = rng.below(6 * 365) as i64;
        let signup = now - signup_days_ago * 86_400_000 - rng.below(86_400_000) as i64;
        let orders = if rng.chance(0.85) {
            1 + rng.below(40) * rng.below(3)
        } else {
            0
        };
        orders_of.push((customer_id.clone(), orders, signup));
        let ltv =
            (orders as f64 * (15.0 + rng.below(20_000) as f64 / 100.0) * 100.0).round() / 100.0;
        let values: Vec<Option<Value>> = vec![
            rng.chance(0.97).then(|| Value::String(email.clone())),
            rng.chance(0.93).then(|| Value::String(first.to_owned())),
            rng.chance(0.9).then(|| Value::String(last.to_owned())),
            rng.chance(0.92)
                .then(|| Value::String(rng.zipf(cities).to_owned())),
            rng.chance(0.98).then(|| Value::String(country.to_owned())),
            rng.chance(0.8)
                .then(|| Value::String(rng.pick(&["F", "M", "F", "M", "X"]).to_owned())),
            Some(Value::String(tier.to_owned())),
            rng.chance(0.85).then_some(Value::Number(f64::from(age))),
            Some(Value::Number(ltv)),
            Some(Value::Number(orders as f64)),
            rng.chance(0.8).then_some(Value::Date(birth)),
            Some(Value::Datetime(signup)),
            (orders > 0).then(|| {
                Value::Datetime(
                    now - (rng.below(signup_days_ago.max(1) as u64) as i64) * 86_400_000
                        - rng.below(86_400_000) as i64,
                )
            }),
        ];
        let changes = ids
            .iter()
            .zip(values)
            .filter_map(|(id, v)| {
                v.map(|v| FieldChange {
                    field: *id,
                    value: Some(v),
                })
            })
            .collect();
        batch.push((
            signup,
            UpsertItem {
                customer_id: CustomerId::parse(&customer_id)?,
                changes,
                subscriptions: Vec::new(),
            },
        ));
    }
    // Customers arrive in the order they signed up, each group stamped with its latest
    // signup, so that "customers over time" tells the shop's history.
    batch.sort_by_key(|(signup, _)| *signup);
    let mut items = batch.into_iter().peekable();
    while items.peek().is_some() {
        let group: Vec<(i64, UpsertItem)> = items.by_ref().take(DEMO_GROUP).collect();
        let stamp = group.last().map_or(now, |(signup, _)| (*signup).min(now));
        let group = group.into_iter().map(|(_, item)| item).collect();
        for result in store.upsert_batch(app.id, group, stamp)? {
            result.context("writing a demo customer")?;
        }
    }
    demo_events(store, app.id, &orders_of, now, &mut rng)?;
    demo_consent(store, app.id, &orders_of, now, &mut rng)?;
    let api_key = unico_server::auth::generate_key("unico_").map_err(|e| anyhow::anyhow!("{e}"))?;
    let prefix: String = api_key
        .chars()
        .take(unico_server::auth::KEY_PREFIX_CHARS)
        .collect();
    store.create_key(
        app.id,
        &unico_server::auth::hash_key(&api_key),
        &prefix,
        now,
    )?;
    Ok(Some(Demo {
        app_id: app.id.0,
        name: name.to_owned(),
        customers,
        api_key,
    }))
}

/// The demo's event types: code, name, channels.
const EVENT_TYPES: &[(&str, &str, &[&str])] = &[
    ("page_view", "Page view", &["web", "app"]),
    ("app_open", "App opened", &["app"]),
    ("email_open", "Email opened", &["email"]),
    ("email_click", "Email clicked", &["email"]),
    ("add_to_cart", "Added to cart", &["web", "app"]),
    ("purchase", "Purchase", &["web", "app", "pos"]),
    ("push_open", "Push opened", &["push"]),
    ("sms_click", "SMS clicked", &["sms"]),
    ("whatsapp_reply", "WhatsApp reply", &["whatsapp"]),
];

const CATEGORIES: &[&str] = &["shoes", "dresses", "bags", "accessories", "sport", "kids"];

/// Gives most customers a statement on email and some on sms, push and whatsapp, made
/// when they signed up or later (a few unsubscribed since).
fn demo_consent(
    store: &dyn Store,
    app: unico_core::AppId,
    customers: &[(String, u64, i64)],
    now: i64,
    rng: &mut Rng,
) -> anyhow::Result<()> {
    use unico_core::{Channel, Source, SubscriptionChange};
    let sources = ["signup_form", "checkout", "crm", "unsubscribe_link"];
    let mut items = Vec::new();
    for (customer_id, _, signup) in customers {
        let mut changes = Vec::new();
        for (channel, share, yes) in [
            ("email", 0.8, 0.85),
            ("sms", 0.4, 0.6),
            ("push", 0.3, 0.7),
            ("whatsapp", 0.15, 0.8),
        ] {
            if !rng.chance(share) {
                continue;
            }
            let subscribed = rng.chance(yes);
            let span = (now - signup).max(1) as u64;
            changes.push(SubscriptionChange {
                channel: Channel::parse(channel)?,
                subscribed,
                at: signup + rng.below(span) as i64,
                source: Source::parse(if subscribed {
                    sources[rng.below(3) as usize]
                } else {
                    sources[3]
                })?,
            });
        }
        if !changes.is_empty() {
            // Through the batch: a statement with no values, many customers per commit.
            items.push(UpsertItem {
                customer_id: CustomerId::parse(customer_id)?,
                changes: Vec::new(),
                subscriptions: changes,
            });
        }
        if items.len() >= CONSENT_GROUP {
            for r in store.upsert_batch(app, std::mem::take(&mut items), now)? {
                r.context("writing a demo subscription")?;
            }
        }
    }
    for r in store.upsert_batch(app, items, now)? {
        r.context("writing a demo subscription")?;
    }
    Ok(())
}

/// Registers the demo's event types and gives each customer a history of interactions
/// over the last year, busier for those who order more and skewed to recent days.
fn demo_events(
    store: &dyn Store,
    app: unico_core::AppId,
    customers: &[(String, u64, i64)],
    now: i64,
    rng: &mut Rng,
) -> anyhow::Result<()> {
    use unico_core::{Channel, EventCode, EventType, Properties, PropertyType};
    for (code, name, _) in EVENT_TYPES {
        let properties = if *code == "purchase" {
            vec![
                ("amount".to_owned(), PropertyType::Number),
                ("items".to_owned(), PropertyType::Number),
                ("category".to_owned(), PropertyType::String),
            ]
        } else {
            Vec::new()
        };
        store.create_event_type(
            app,
            &EventType {
                code: EventCode::parse(code)?,
                name: (*name).to_owned(),
                retention_days: 730,
                enabled: true,
                properties,
                created_at: now,
            },
        )?;
    }
    // Computed fields: what a marketer asks of the events, kept current without a job.
    for (name, agg, event, property, window) in [
        ("purchases_90d", "count", "purchase", None, Some("90d")),
        (
            "spent_365d",
            "sum",
            "purchase",
            Some("amount"),
            Some("365d"),
        ),
        ("last_app_open", "last", "app_open", None, None),
    ] {
        let computed = unico_core::Computed::new(
            EventCode::parse(event)?,
            unico_core::ComputedAgg::parse(agg)?,
            property.map(str::to_owned),
            window.map(unico_core::Computed::parse_window).transpose()?,
        )?;
        store.create_computed_field(
            app,
            &FieldName::parse(name)?,
            computed.agg.field_type(),
            &computed,
            now,
        )?;
    }
    let mut events = Vec::new();
    for (customer_id, orders, signup) in customers {
        if rng.chance(0.2) {
            continue;
        }
        let count = 1 + rng.below(4 + 2 * orders.min(&10)) as usize;
        let since = (*signup).max(now - 365 * 86_400_000);
        let span = (now - since).max(86_400_000) as u64;
        for _ in 0..count {
            let (code, _, channels) = EVENT_TYPES[rng.below(EVENT_TYPES.len() as u64) as usize];
            // Squaring a uniform number skews times towards now.
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let timestamp = now - (u * u * span as f64) as i64;
            let properties = match code {
                "purchase" => serde_json::json!({
                    "amount": (1_000 + rng.below(25_000)) as f64 / 100.0,
                    "items": 1 + rng.below(4),
                    "category": rng.pick(CATEGORIES),
                    "currency": "EUR",
                }),
                "add_to_cart" | "page_view" => {
                    serde_json::json!({"category": rng.pick(CATEGORIES)})
                }
                _ => serde_json::json!({}),
            };
            events.push(unico_store::NewEvent {
                by_identity: None,
                event_id: None,
                customer_id: CustomerId::parse(customer_id)?,
                event_type: EventCode::parse(code)?,
                channel: Channel::parse(rng.pick(channels))?,
                device_id: None,
                timestamp,
                properties: Properties::from_json(properties)?,
            });
            if events.len() >= 5_000 {
                for r in store.insert_events(app, std::mem::take(&mut events), now)? {
                    r.context("writing a demo event")?;
                }
            }
        }
    }
    for r in store.insert_events(app, events, now)? {
        r.context("writing a demo event")?;
    }
    Ok(())
}
