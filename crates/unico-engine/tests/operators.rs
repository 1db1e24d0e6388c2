//! Unit tests of the engine by operator family, on small hand-made applications: each
//! answer is written out, and each is also checked against the reference evaluator.

use jiff::tz::TimeZone;
use unico_core::time::{parse_date, parse_datetime};
use unico_core::{Customer, CustomerId, FieldDef, FieldId, FieldName, FieldType, Schema, Value};
use unico_engine::{AppIndex, SortKey, SortPosition};
use unico_filter::{EvalContext, Filter, FilterInput, matches};

const NAME: FieldId = FieldId(1);
const AGE: FieldId = FieldId(2);
const SEEN: FieldId = FieldId(3);
const BORN: FieldId = FieldId(4);

fn schema_of(fields: &[(FieldId, &str, FieldType)]) -> Schema {
    Schema::new(
        fields
            .iter()
            .map(|&(id, name, field_type)| FieldDef {
                id,
                name: FieldName::parse(name).expect("valid test data"),
                field_type,
                created_at: 0,
                computed: None,
            })
            .collect(),
    )
}

fn schema() -> Schema {
    schema_of(&[
        (NAME, "name", FieldType::String),
        (AGE, "age", FieldType::Number),
        (SEEN, "seen", FieldType::Datetime),
        (BORN, "born", FieldType::Date),
    ])
}

fn ms(t: &str) -> i64 {
    parse_datetime(t).expect("valid test data")
}

fn customer(id: i64, cid: &str, fields: Vec<(FieldId, Value)>) -> Customer {
    let mut fields = fields;
    fields.sort_by_key(|(f, _)| *f);
    Customer {
        id,
        customer_id: CustomerId::parse(cid).expect("valid test data"),
        created_at: ms("2024-01-01T00:00:00Z") + id,
        updated_at: ms("2024-06-01T00:00:00Z"),
        fields,
    }
}

struct App {
    schema: Schema,
    index: AppIndex,
    customers: Vec<Customer>,
    ctx: EvalContext,
}

impl App {
    fn new(customers: Vec<Customer>) -> Self {
        let schema = schema();
        let mut index = AppIndex::new(&schema);
        for c in &customers {
            index.upsert(c);
        }
        let ctx = EvalContext::new(ms("2025-02-28T12:00:00Z"), TimeZone::UTC);
        Self {
            schema,
            index,
            customers,
            ctx,
        }
    }

    /// The customerIds matching `text`, in customerId order, checked against the
    /// reference evaluator.
    fn ids(&self, text: &str) -> Vec<String> {
        let filter = Filter::parse(FilterInput::Text(text), &self.schema).expect("valid test data");
        let members = self.index.members(&filter, &self.ctx);
        let mut want: Vec<&Customer> = self
            .customers
            .iter()
            .filter(|c| matches(&filter, c, &self.ctx))
            .collect();
        want.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        let got = self
            .index
            .page_by_customer_id(&members, None, false, usize::MAX);
        assert_eq!(got, want.iter().map(|c| c.id).collect::<Vec<_>>(), "{text}");
        assert_eq!(self.index.count(&filter, &self.ctx), got.len() as u64);
        want.iter()
            .map(|c| c.customer_id.as_str().to_owned())
            .collect()
    }
}

fn people() -> Vec<Customer> {
    vec![
        customer(
            1,
            "ana",
            vec![
                (NAME, Value::String("Ángel".into())),
                (AGE, Value::Number(30.0)),
                (SEEN, Value::Datetime(ms("2025-02-20T10:00:00Z"))),
                (
                    BORN,
                    Value::Date(parse_date("1990-02-28").expect("valid test data")),
                ),
            ],
        ),
        customer(
            2,
            "bob",
            vec![
                (NAME, Value::String("bob@GMAIL.com".into())),
                (AGE, Value::Number(-0.0)),
                (SEEN, Value::Datetime(ms("2024-12-01T00:00:00Z"))),
            ],
        ),
        customer(
            3,
            "Zed",
            vec![
                (NAME, Value::String("Straße".into())),
                (
                    BORN,
                    Value::Date(parse_date("2000-02-29").expect("valid test data")),
                ),
            ],
        ),
        customer(4, "éa", vec![]),
    ]
}

#[test]
fn string_operators() {
    let app = App::new(people());
    assert_eq!(app.ids(r#"name = "Ángel""#), ["ana"]);
    assert_eq!(app.ids(r#"name != "Ángel""#), ["Zed", "bob"]);
    assert_eq!(app.ids(r#"name in ("Straße", "nobody")"#), ["Zed"]);
    assert_eq!(app.ids(r#"name not_in ("Straße", "Ángel")"#), ["bob"]);
    assert_eq!(app.ids(r#"name contains "ÁNG""#), ["ana"]);
    assert_eq!(app.ids(r#"name not_contains "a""#), ["ana"]);
    assert_eq!(app.ids(r#"name starts_with "STR""#), ["Zed"]);
    assert_eq!(app.ids(r#"name ends_with "@gmail.COM""#), ["bob"]);
    assert_eq!(app.ids(r#"name ends_with "strasse""#), Vec::<String>::new());
    assert_eq!(app.ids(r#"customerId starts_with "z""#), ["Zed"]);
}

#[test]
fn number_operators() {
    let app = App::new(people());
    assert_eq!(app.ids("age = 0"), ["bob"], "-0 equals 0");
    assert_eq!(app.ids("age != 30"), ["bob"]);
    assert_eq!(app.ids("age < 30"), ["bob"]);
    assert_eq!(app.ids("age <= 30"), ["ana", "bob"]);
    assert_eq!(app.ids("age > 0"), ["ana"]);
    assert_eq!(app.ids("age >= 0"), ["ana", "bob"]);
    assert_eq!(app.ids("age between 0 and 29"), ["bob"]);
    assert_eq!(app.ids("age in (30, 31)"), ["ana"]);
    assert_eq!(app.ids("age not_in (30)"), ["bob"]);
}

#[test]
fn time_operators() {
    let app = App::new(people());
    assert_eq!(app.ids(r#"seen before "2025-01-01""#), ["bob"]);
    assert_eq!(app.ids(r#"seen after 30d ago"#), ["ana"]);
    assert_eq!(app.ids("seen within_last 30d"), ["ana"]);
    assert_eq!(app.ids("seen not_within_last 30d"), ["bob"]);
    assert_eq!(app.ids(r#"seen on "2025-02-20""#), ["ana"]);
    assert_eq!(
        app.ids(r#"born between "1990-01-01" and "1999-12-31""#),
        ["ana"]
    );
    assert_eq!(
        app.ids(r#"created_at after "2024-01-01T00:00:00.002Z""#),
        ["Zed", "éa"]
    );
    assert_eq!(app.ids(r#"updated_at on "2024-06-01""#).len(), 4);
}

#[test]
fn leap_day_birthdays_are_celebrated_on_28_february_in_common_years() {
    // 2025-02-28: both the 28 February and the 29 February birthdays.
    let app = App::new(people());
    assert_eq!(app.ids("born anniversary"), ["Zed", "ana"]);
    // 2024-02-28: a leap year, the 29th waits for tomorrow.
    let mut app = App::new(people());
    app.ctx = EvalContext::new(ms("2024-02-28T12:00:00Z"), TimeZone::UTC);
    assert_eq!(app.ids("born anniversary"), ["ana"]);
    assert_eq!(app.ids("born anniversary within 1d"), ["Zed", "ana"]);
}

#[test]
fn anniversaries_of_datetimes_read_the_application_time_zone() {
    // 23:30 UTC on 19 February is already 20 February in Madrid.
    let mut customers = people();
    customers[1].fields[2].1 = Value::Datetime(ms("2024-02-19T23:30:00Z"));
    let mut app = App::new(customers);
    let madrid = TimeZone::get("Europe/Madrid").expect("valid test data");
    app.ctx = EvalContext::new(ms("2025-02-20T12:00:00Z"), madrid.clone());
    // The index still precomputes UTC dates: evaluated per row in Madrid.
    assert_eq!(app.ids("seen anniversary"), ["ana", "bob"]);
    app.index.set_timezone(madrid);
    assert_eq!(app.ids("seen anniversary"), ["ana", "bob"]);
}

#[test]
fn missing_values_and_not_is_the_complement() {
    let app = App::new(people());
    assert_eq!(app.ids("age exists"), ["ana", "bob"]);
    assert_eq!(app.ids("age not_exists"), ["Zed", "éa"]);
    assert_eq!(app.ids(r#"not name = "Ángel""#), ["Zed", "bob", "éa"]);
    assert_eq!(app.ids(r#"name != "Ángel""#), ["Zed", "bob"]);
    assert_eq!(app.ids("not (age > 10 or born exists)"), ["bob", "éa"]);
    assert_eq!(app.ids("age > 10 and not age > 10"), Vec::<String>::new());
}

#[test]
fn removed_customers_are_gone_and_their_slots_reused() {
    let mut app = App::new(people());
    app.index.remove(1);
    app.index.remove(99);
    app.customers.retain(|c| c.id != 1);
    assert_eq!(app.index.len(), 3);
    assert_eq!(app.ids("not age > 1000"), ["Zed", "bob", "éa"]);
    assert_eq!(app.ids(r#"name = "Ángel""#), Vec::<String>::new());
    let newcomer = customer(5, "aaa", vec![(AGE, Value::Number(7.0))]);
    app.index.upsert(&newcomer);
    app.customers.push(newcomer);
    assert_eq!(app.ids("age exists"), ["aaa", "bob"]);
    assert_eq!(app.index.field_value_count(AGE), 2);
    // Replacing a customer replaces every value.
    let bob = customer(2, "bob", vec![(NAME, Value::String("Bob".into()))]);
    app.index.upsert(&bob);
    app.customers.retain(|c| c.id != 2);
    app.customers.push(bob);
    assert_eq!(app.ids("age exists"), ["aaa"]);
}

#[test]
fn fields_added_dropped_and_retyped() {
    let mut app = App::new(people());
    let fewer = schema_of(&[
        (NAME, "name", FieldType::String),
        (FieldId(9), "tier", FieldType::String),
        (AGE, "age", FieldType::String),
    ]);
    app.index.set_schema(&fewer);
    app.schema = fewer;
    assert_eq!(app.index.field_value_count(SEEN), 0, "dropped");
    assert_eq!(app.index.field_value_count(AGE), 0, "retyped: starts empty");
    for c in &mut app.customers {
        c.fields.retain(|(id, _)| *id == NAME);
    }
    assert_eq!(app.ids("tier not_exists").len(), 4);
    assert_eq!(app.ids("age exists"), Vec::<String>::new());
    assert_eq!(app.ids(r#"name = "Straße""#), ["Zed"]);
}

#[test]
fn long_strings_and_many_distinct_values() {
    let long = "é".repeat(2048); // 4 096 bytes
    let mut customers: Vec<Customer> = (1..=3000)
        .map(|i| {
            customer(
                i,
                &format!("c{i:05}"),
                vec![(NAME, Value::String(format!("user{i}@x.org")))],
            )
        })
        .collect();
    customers.push(customer(
        5000,
        "long",
        vec![(NAME, Value::String(long.clone()))],
    ));
    let app = App::new(customers);
    assert_eq!(app.ids(&format!(r#"name = "{long}""#)), ["long"]);
    assert_eq!(app.ids(r#"name ends_with "9@x.org""#).len(), 300);
    assert_eq!(app.ids(r#"name contains "ÉÉÉ""#), ["long"]);
}

#[test]
fn pages_by_field_put_missing_values_last_both_ways() {
    let app = App::new(people());
    let all = app.index.all();
    assert_eq!(
        app.index
            .page_by_field(&all, SortKey::Field(AGE), None, false, 10),
        [2, 1, 3, 4]
    );
    assert_eq!(
        app.index
            .page_by_field(&all, SortKey::Field(AGE), None, true, 10),
        [1, 2, 4, 3]
    );
    let after = app
        .index
        .sort_position(1, SortKey::Field(AGE))
        .expect("valid test data");
    assert_eq!(
        after,
        SortPosition {
            value: Some(Value::Number(30.0)),
            customer_id: "ana".into()
        }
    );
    assert_eq!(
        app.index
            .page_by_field(&all, SortKey::Field(AGE), Some(&after), false, 1),
        [3]
    );
    assert_eq!(
        app.index
            .page_by_field(&all, SortKey::CustomerId, None, false, 2),
        [3, 1]
    );
    assert_eq!(
        app.index.page_by_customer_id(&all, Some("ana"), false, 10),
        [2, 4]
    );
    assert_eq!(
        app.index.page_by_customer_id(&all, Some("ana"), true, 10),
        [3]
    );
}

#[test]
fn memory_is_accounted() {
    let app = App::new(people());
    assert!(app.index.memory_bytes() > 4096);
}
