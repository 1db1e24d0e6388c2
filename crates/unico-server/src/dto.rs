//! The wire shapes of the API (JSON bodies in and out) and their conversions.
//!
//! Domain types are not `Serialize`; every shape a client sees is declared here, so a
//! change of the wire contract is a change of this file.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use unico_core::time::{format_date, format_datetime};
use unico_core::value::{excerpt, from_json_number, parse_text};
use unico_core::{Application, Customer, CustomerId, FieldChange, FieldType, Schema, Value};
use unico_store::{ApiKeyInfo, FieldStat};
use utoipa::ToSchema;

use crate::error::ErrorDetail;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub name: String,
    /// IANA time zone; `UTC` when absent.
    pub timezone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    pub name: Option<String>,
    pub timezone: Option<String>,
    /// Register an unknown event type on its first event instead of refusing the event.
    pub auto_register_event_types: Option<bool>,
    /// The channels, beyond email, sms, push and whatsapp, the application takes
    /// subscriptions for (replaces the list).
    pub subscription_channels: Option<Vec<String>>,
    /// The identity kinds, beyond device_id, email, phone and external_code, the
    /// application takes (replaces the list).
    pub identity_kinds: Option<Vec<String>>,
    /// Whether an event naming an identity nobody holds creates an anonymous customer
    /// (`true`, the default) or is refused.
    pub anonymous_profiles: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct AppOut {
    pub id: i64,
    pub name: String,
    pub timezone: String,
    pub created_at: String,
    /// Whether an event of an unregistered type registers it (`false`: the event is
    /// refused, the default).
    pub auto_register_event_types: bool,
    /// Every channel the application takes subscriptions for (email, sms, push, whatsapp,
    /// then those it declared).
    pub subscription_channels: Vec<String>,
    /// Every identity kind the application takes (device_id, email, phone, external_code,
    /// then those it declared).
    pub identity_kinds: Vec<String>,
    /// An event naming an identity nobody holds creates an anonymous customer holding it
    /// (customerId `anon-` and 20 hexadecimal digits); `false`: the event is refused.
    pub anonymous_profiles: bool,
}

impl AppOut {
    pub fn new(a: &Application, auto_register_event_types: bool) -> Self {
        AppOut {
            id: a.id.0,
            name: a.name.as_str().to_owned(),
            timezone: a.timezone.as_str().to_owned(),
            created_at: format_datetime(a.created_at),
            auto_register_event_types,
            subscription_channels: unico_core::subscription::DEFAULT_SUBSCRIPTION_CHANNELS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            identity_kinds: unico_core::identity::DEFAULT_IDENTITY_KINDS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            anonymous_profiles: true,
        }
    }

    /// With the application's identity settings.
    pub fn with_identity(mut self, rules: &crate::identity::IdentityRules) -> Self {
        self.identity_kinds = rules.kinds.iter().map(|k| k.as_str().to_owned()).collect();
        self.anonymous_profiles = rules.anonymous_profiles;
        self
    }

    /// With the channels this schema takes subscriptions for.
    pub fn with_channels(mut self, schema: &unico_core::Schema) -> Self {
        self.subscription_channels = schema
            .subscription_channels()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        self
    }
}

#[derive(Serialize, ToSchema)]
pub struct AppCreated {
    #[serde(flatten)]
    pub app: AppOut,
    /// The application's first API key. Shown once: only its hash is kept.
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct AppList {
    pub apps: Vec<AppOut>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    pub id: i64,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl From<&ApiKeyInfo> for KeyOut {
    fn from(k: &ApiKeyInfo) -> Self {
        KeyOut {
            id: k.id,
            prefix: k.prefix.clone(),
            created_at: format_datetime(k.created_at),
            revoked_at: k.revoked_at.map(format_datetime),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    #[serde(flatten)]
    pub info: KeyOut,
    /// The key itself. Shown once: only its hash is kept.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyOut>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateField {
    pub name: String,
    /// `string`, `number`, `datetime` or `date` (case-insensitive). A computed field's is
    /// the type of its aggregate: `number`, or `datetime` for `first` and `last`.
    #[serde(rename = "type")]
    pub field_type: String,
    /// Makes the field computed (read-only): the aggregate of each customer's events.
    pub computed: Option<ComputedDef>,
}

/// What a computed field aggregates: `{"event": "purchase", "agg": "sum", "property":
/// "amount", "within_last": "90d"}`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComputedDef {
    /// A registered event type.
    pub event: String,
    /// `count`, `sum`, `avg`, `min`, `max`, `first` or `last`.
    pub agg: String,
    /// The number property aggregated: required for `sum`, `avg`, `min` and `max`, refused
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Only events in this last span count (`90d`; units m, h, d, w); none: every
    /// retained event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_last: Option<String>,
}

impl ComputedDef {
    pub fn new(c: &unico_core::Computed) -> Self {
        ComputedDef {
            event: c.event.as_str().to_owned(),
            agg: c.agg.as_str().to_owned(),
            property: c.property.clone(),
            within_last: c.within_last.map(|d| d.to_string()),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateField {
    /// The new type; allowed only while no customer holds a value.
    #[serde(rename = "type")]
    pub field_type: String,
}

#[derive(Serialize, ToSchema)]
pub struct FieldOut {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub created_at: String,
    /// How many customers hold a value for this field (stored fields only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_count: Option<u64>,
    /// A computed field's definition (its values are read-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computed: Option<ComputedDef>,
}

impl FieldOut {
    pub fn new(def: &unico_core::FieldDef, value_count: Option<u64>) -> Self {
        FieldOut {
            name: def.name.as_str().to_owned(),
            field_type: def.field_type.as_str().to_owned(),
            created_at: format_datetime(def.created_at),
            value_count: value_count.filter(|_| !def.is_computed()),
            computed: def.computed.as_ref().map(ComputedDef::new),
        }
    }
}

impl From<&FieldStat> for FieldOut {
    fn from(s: &FieldStat) -> Self {
        FieldOut::new(&s.field, Some(s.value_count))
    }
}

#[derive(Serialize, ToSchema)]
pub struct FieldList {
    pub fields: Vec<FieldOut>,
}

#[derive(Serialize, ToSchema)]
pub struct FieldDeleted {
    /// How many customers lost their value for the field.
    pub values_deleted: u64,
}

/// A customer as clients see it (SPEC §7).
#[derive(Serialize, ToSchema)]
pub struct CustomerOut {
    pub id: i64,
    #[serde(rename = "customerId")]
    pub customer_id: String,
    pub created_at: String,
    pub updated_at: String,
    /// Values by field name: numbers as JSON numbers, datetimes as RFC 3339 UTC, dates as
    /// `YYYY-MM-DD`; absent fields are omitted.
    #[schema(value_type = Object)]
    pub fields: Map<String, Json>,
}

/// Request body to create a customer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreateCustomer {
    #[schema(rename = "customerId")]
    pub customer_id: String,
    #[schema(value_type = Object)]
    pub fields: Option<Map<String, Json>>,
}

/// Request body to change a customer: `null` or `""` removes a value.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PatchCustomer {
    #[schema(value_type = Object)]
    pub fields: Map<String, Json>,
}

#[derive(Serialize, ToSchema)]
pub struct CustomerList {
    pub customers: Vec<CustomerOut>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    #[serde(rename = "customerId", skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// `created`, `updated` or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorObject>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchOut {
    pub results: Vec<BatchResult>,
}

/// The JSON form of a value.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Json::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map(Json::Number)
                    .unwrap_or(Json::Null)
            }
        }
        Value::Datetime(ms) => Json::String(format_datetime(*ms)),
        Value::Date(days) => Json::String(format_date(*days)),
    }
}

pub fn customer_out(c: &Customer, schema: &Schema) -> CustomerOut {
    let mut fields = Map::new();
    for (id, value) in &c.fields {
        if let Some(def) = schema.by_id(*id) {
            fields.insert(def.name.as_str().to_owned(), value_json(value));
        }
    }
    CustomerOut {
        id: c.id,
        customer_id: c.customer_id.as_str().to_owned(),
        created_at: format_datetime(c.created_at),
        updated_at: format_datetime(c.updated_at),
        fields,
    }
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// One JSON value for a field of type `ty`, by SPEC §1: `null` and `""` mean absent.
pub fn json_to_value(ty: FieldType, json: &Json) -> Result<Option<Value>, String> {
    match json {
        Json::Null => Ok(None),
        Json::String(s) => parse_text(ty, s).map_err(|e| e.to_string()),
        Json::Number(n) => {
            let as_f64 = n.as_f64().unwrap_or(f64::NAN);
            from_json_number(ty, as_f64, n.as_i64())
                .map(Some)
                .map_err(|e| e.to_string())
        }
        other => Err(format!(
            "expected {}, got {}",
            ty.described(),
            json_kind(other)
        )),
    }
}

/// Turns a `fields` object into changes, collecting every problem.
pub fn fields_to_changes(
    fields: &Map<String, Json>,
    schema: &Schema,
    path: &str,
) -> Result<Vec<FieldChange>, Vec<ErrorDetail>> {
    let mut changes = Vec::with_capacity(fields.len());
    let mut problems = Vec::new();
    for (name, json) in fields {
        let Some(def) = schema.by_name(name) else {
            let hint = match schema.suggest(name) {
                Some(s) => format!(" — did you mean \"{s}\"?"),
                None => " — create it first with POST …/fields".to_owned(),
            };
            let reserved = unico_core::names::RESERVED_FIELD_NAMES.contains(&name.as_str());
            let message = if reserved {
                format!("\"{name}\" is a built-in attribute and cannot be set in fields")
            } else {
                format!("unknown field \"{}\"{hint}", excerpt(name))
            };
            problems.push(ErrorDetail {
                field: Some(format!("{path}{}", excerpt(name))),
                message,
            });
            continue;
        };
        if let Some(computed) = &def.computed {
            problems.push(ErrorDetail {
                field: Some(format!("{path}{name}")),
                message: format!(
                    "\"{name}\" is a computed field ({computed}): its value comes from the customer's events and cannot be set"
                ),
            });
            continue;
        }
        match json_to_value(def.field_type, json) {
            Ok(value) => changes.push(FieldChange {
                field: def.id,
                value,
            }),
            Err(reason) => problems.push(ErrorDetail {
                field: Some(format!("{path}{name}")),
                message: format!(
                    "invalid value for field \"{name}\" ({}): {reason}",
                    def.field_type
                ),
            }),
        }
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(problems)
    }
}

/// Parses a customerId from JSON: it must be a string following the customerId rules.
pub fn json_customer_id(json: Option<&Json>, path: &str) -> Result<CustomerId, ErrorDetail> {
    let detail = |message: String| ErrorDetail {
        field: Some(path.to_owned()),
        message,
    };
    match json {
        None => Err(detail("customerId is required".into())),
        Some(Json::String(s)) => CustomerId::parse(s).map_err(|e| detail(e.to_string())),
        Some(other) => Err(detail(format!(
            "customerId must be a JSON string, got {}",
            json_kind(other)
        ))),
    }
}

/// Parses `{"customerId", "fields"}` (one item of a create or a batch).
pub fn customer_input(
    json: &Json,
    schema: &Schema,
    path: &str,
) -> Result<(CustomerId, Vec<FieldChange>), Vec<ErrorDetail>> {
    let Json::Object(obj) = json else {
        return Err(vec![ErrorDetail {
            field: Some(if path.is_empty() {
                "body".into()
            } else {
                path.trim_end_matches('.').to_owned()
            }),
            message: format!(
                "expected an object {{\"customerId\": \"…\", \"fields\": {{…}}}}, got {}",
                json_kind(json)
            ),
        }]);
    };
    let mut problems = Vec::new();
    for key in obj.keys() {
        if key != "customerId" && key != "fields" {
            let why = if matches!(key.as_str(), "id" | "created_at" | "updated_at") {
                "is assigned by the server".to_owned()
            } else {
                "is not a known key (expected customerId and fields)".to_owned()
            };
            problems.push(ErrorDetail {
                field: Some(format!("{path}{}", excerpt(key))),
                message: format!("\"{}\" {why}", excerpt(key)),
            });
        }
    }
    let id = json_customer_id(obj.get("customerId"), &format!("{path}customerId"));
    let changes = match obj.get("fields") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Object(fields)) => fields_to_changes(fields, schema, &format!("{path}fields.")),
        Some(other) => Err(vec![ErrorDetail {
            field: Some(format!("{path}fields")),
            message: format!(
                "fields must be an object of field name to value, got {}",
                json_kind(other)
            ),
        }]),
    };
    match (id, changes) {
        (Ok(id), Ok(changes)) if problems.is_empty() => Ok((id, changes)),
        (id, changes) => {
            if let Err(e) = id {
                problems.insert(0, e);
            }
            if let Err(more) = changes {
                problems.extend(more);
            }
            Err(problems)
        }
    }
}

// ---- interactions ----

/// An event type as registered: `{"code", "name", "retention_days", "enabled",
/// "properties": {"amount": "number"}}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventType {
    pub code: String,
    /// Display name; the code when absent.
    pub name: Option<String>,
    /// Days events of this type are kept; 1095 (three years) when absent.
    pub retention_days: Option<i64>,
    /// `true` when absent.
    pub enabled: Option<bool>,
    /// Declared properties and their types (`number` or `string`).
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Json>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventType {
    pub name: Option<String>,
    pub retention_days: Option<i64>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Json>>,
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeOut {
    pub code: String,
    pub name: String,
    pub retention_days: u32,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub properties: Map<String, Json>,
    pub created_at: String,
}

impl From<&unico_core::EventType> for EventTypeOut {
    fn from(t: &unico_core::EventType) -> Self {
        EventTypeOut {
            code: t.code.as_str().to_owned(),
            name: t.name.clone(),
            retention_days: t.retention_days,
            enabled: t.enabled,
            properties: t
                .properties
                .iter()
                .map(|(n, ty)| (n.clone(), Json::String(ty.as_str().to_owned())))
                .collect(),
            created_at: format_datetime(t.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeList {
    pub event_types: Vec<EventTypeOut>,
}

#[derive(Serialize, ToSchema)]
pub struct EventTypeDeleted {
    /// How many stored events of the type went with it.
    pub events_deleted: u64,
}

/// `POST …/events`: `{"events": [ … ]}`, each item `{"event_id"?, "customerId", "type",
/// "channel", "device_id"?, "timestamp"?, "properties"?}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventsIn {
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Json>,
}

#[derive(Serialize, ToSchema)]
pub struct EventResult {
    /// `stored`, `duplicate` or `error`.
    pub status: &'static str,
    /// The stored event's id (for a duplicate, the event stored first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(rename = "customerId", skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The event created its customer (it did not exist yet).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub customer_created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorObject>,
}

#[derive(Serialize, ToSchema)]
pub struct EventsOut {
    pub results: Vec<EventResult>,
    /// How many items were stored, were duplicates, and failed.
    pub stored: u64,
    pub duplicates: u64,
    pub errors: u64,
}

#[derive(Serialize, ToSchema)]
pub struct EventOut {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(rename = "customerId")]
    pub customer_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub timestamp: String,
    #[schema(value_type = Object)]
    pub properties: Map<String, Json>,
}

impl EventOut {
    pub fn new(e: &unico_core::Event, customer_id: &CustomerId) -> Self {
        EventOut {
            id: e.id,
            event_id: e.event_id.clone(),
            customer_id: customer_id.as_str().to_owned(),
            event_type: e.event_type.as_str().to_owned(),
            channel: e.channel.as_str().to_owned(),
            device_id: e.device_id.clone(),
            timestamp: format_datetime(e.timestamp),
            properties: e.properties.as_map().clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    /// With `summary=true`: how many events the customer has, first and last seen, and
    /// the channels used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ActivityOut>,
    pub events: Vec<EventOut>,
    /// Pass as `cursor` to get the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What a customer's events say about them.
#[derive(Serialize, ToSchema)]
pub struct ActivityOut {
    pub events: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub channels: Vec<String>,
}

impl From<&unico_store::Activity> for ActivityOut {
    fn from(a: &unico_store::Activity) -> Self {
        ActivityOut {
            events: a.events,
            first_seen: a.first_seen.map(format_datetime),
            last_seen: a.last_seen.map(format_datetime),
            channels: a.channels.iter().map(|c| c.as_str().to_owned()).collect(),
        }
    }
}
