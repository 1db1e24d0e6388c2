//! Unico's domain core: the vocabulary every other crate speaks.
//!
//! Nothing here does I/O. The types enforce the product's rules at construction
//! ("parse, don't validate"): a [`FieldName`], a [`CustomerId`] or a [`Value`] that exists
//! is valid, so code further in never re-checks them.
//!
//! - [`limits`]: every limit of the product as a named constant.
//! - [`names`]: field names and customerIds, the two user-chosen keys.
//! - [`field`]: field types and field definitions; the schema of an application.
//! - [`value`]: typed values and the one parser shared by the API, CSV and filters.
//! - [`time`]: instants and calendar dates (parsing, formatting, civil arithmetic).
//! - [`app`]: applications (tenants) and their time zones.
//! - [`customer`]: the customer profile.
//! - [`event`]: interactions (events), their types, channels and properties.
//! - [`identity`]: identities (device, email, phone…) and their normalisation.
//! - [`flat_json`]: flat JSON objects of scalars (most events' properties), read by hand.

pub mod app;
pub mod computed;
pub mod customer;
pub mod event;
pub mod field;
pub mod flat_json;
pub mod identity;
pub mod limits;
pub mod names;
pub mod span;
pub mod subscription;
pub mod time;
pub mod value;

pub use app::{AppError, AppId, AppName, Application, TimeZoneName};
pub use computed::{Computed, ComputedAgg, ComputedError};
pub use customer::{Customer, FieldChange};
pub use event::{
    Channel, Event, EventCode, EventError, EventNames, EventType, EventTypes, PropRef, Properties,
    PropertyType, SeenCodes,
};
pub use field::{FieldDef, FieldId, FieldType, Schema};
pub use identity::{Identity, IdentityError, IdentityKind};
pub use names::{CustomerId, FieldName, NameError};
pub use subscription::{Source, Subscription, SubscriptionChange};
pub use value::{Value, ValueError};
