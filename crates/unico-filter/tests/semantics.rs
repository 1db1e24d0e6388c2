//! The meaning of every operator on every type (SPEC §2), including missing values, the
//! complement rule, time zones and 29 February. Each case is evaluated three ways: the
//! reference evaluator, the resolved form, and `not (...)`, which must be the complement.

mod common;

use common::*;
use jiff::tz::TimeZone;
use unico_core::{Customer, Value};
use unico_filter::{EvalContext, Filter, FilterInput, matches, resolve};

struct At<'a> {
    now: &'a str,
    tz: &'a str,
}

const UTC_NOW: At<'static> = At {
    now: "2024-05-10T12:00:00Z",
    tz: "UTC",
};

fn eval(filter: &str, customer: &Customer, at: &At<'_>) -> bool {
    let schema = schema();
    let parse = |text: &str| {
        Filter::parse(FilterInput::Text(text), &schema)
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    };
    let f = parse(filter);
    let tz = TimeZone::get(at.tz).expect("known zone");
    let ctx = EvalContext::new(ms(at.now), tz);
    let naive = matches(&f, customer, &ctx);
    assert_eq!(
        resolve(&f, &ctx).matches(customer),
        naive,
        "resolved form disagrees on {filter:?}"
    );
    let negated = parse(&format!("not ({filter})"));
    assert_eq!(
        matches(&negated, customer, &ctx),
        !naive,
        "not ({filter}) is no complement"
    );
    naive
}

/// Evaluates every case and reports all the wrong ones at once.
fn check(customer: &Customer, at: &At<'_>, cases: &[(&str, bool)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(filter, expected)| eval(filter, customer, at) != *expected)
        .map(|(filter, expected)| format!("{filter:?} should be {expected}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "at {} in {}:\n{}",
        at.now,
        at.tz,
        wrong.join("\n")
    );
}

fn nobody() -> Customer {
    customer(vec![])
}

#[test]
fn string_operators() {
    let es = customer(vec![
        (COUNTRY, Value::String("ES".into())),
        (GENDER, Value::String("M".into())),
        (LAST_PURCHASE_SPACED, Value::String("Ángel Straße".into())),
    ]);
    check(
        &es,
        &UTC_NOW,
        &[
            ("country = \"ES\"", true),
            ("country = \"es\"", false),
            ("country != \"ES\"", false),
            ("country != \"FR\"", true),
            ("country in (\"FR\", \"ES\")", true),
            ("country in (\"es\")", false),
            ("country not_in (\"FR\")", true),
            ("country not_in (\"FR\", \"ES\")", false),
            ("country contains \"s\"", true),
            ("country not_contains \"s\"", false),
            ("country not_contains \"x\"", true),
            ("country starts_with \"e\"", true),
            ("country ends_with \"S\"", true),
            ("country ends_with \"E\"", false),
            ("country exists", true),
            ("country not_exists", false),
            ("`last purchase` contains \"ÁNGEL\"", true),
            ("`last purchase` starts_with \"ángel s\"", true),
            ("`last purchase` ends_with \"STRASSE\"", false), // lowercase, not case folding
            ("`last purchase` ends_with \"STRAßE\"", true),
            ("not gender = \"F\"", true),
            ("gender != \"F\"", true),
        ],
    );
    check(
        &nobody(),
        &UTC_NOW,
        &[
            ("country = \"ES\"", false),
            ("country != \"ES\"", false),
            ("country in (\"ES\")", false),
            ("country not_in (\"ES\")", false),
            ("country contains \"E\"", false),
            ("country not_contains \"E\"", false),
            ("country starts_with \"E\"", false),
            ("country ends_with \"S\"", false),
            ("country exists", false),
            ("country not_exists", true),
            // The SPEC's example: `not` includes customers without a value, `!=` does not.
            ("not gender = \"F\"", true),
            ("gender != \"F\"", false),
        ],
    );
}

#[test]
fn number_operators() {
    let thirty = customer(vec![(AGE, Value::Number(30.0))]);
    check(
        &thirty,
        &UTC_NOW,
        &[
            ("age = 30", true),
            ("age = \"30.0\"", true),
            ("age = 3e1", true),
            ("age != 30", false),
            ("age != 31", true),
            ("age < 31", true),
            ("age < 30", false),
            ("age <= 30", true),
            ("age > 30", false),
            ("age > -30.5", true),
            ("age >= 30", true),
            ("age between 25 and 30", true),
            ("age between 30 and 34", true),
            ("age between 30.5 and 34", false),
            ("age between 34 and 25", false),
            ("age in (1, 30)", true),
            ("age in (1, 2)", false),
            ("age not_in (1, 2)", true),
            ("age not_in (30)", false),
            ("age exists", true),
            ("age not_exists", false),
        ],
    );
    check(
        &nobody(),
        &UTC_NOW,
        &[
            ("age = 30", false),
            ("age != 30", false),
            ("age < 100", false),
            ("age >= -100", false),
            ("age between -1e300 and 1e300", false),
            ("age in (30)", false),
            ("age not_in (30)", false),
            ("age not_exists", true),
        ],
    );
    let zero = customer(vec![(AGE, Value::Number(-0.0))]);
    check(
        &zero,
        &UTC_NOW,
        &[
            ("age = 0", true),
            ("age in (0)", true),
            ("age not_in (0)", false),
        ],
    );
}

#[test]
fn datetime_operators_absolute_and_relative() {
    // now = 2024-05-10T12:00Z; the purchase was 9 days and 2 hours before.
    let bought = customer(vec![(
        LAST_PURCHASE_AT,
        Value::Datetime(ms("2024-05-01T10:00:00Z")),
    )]);
    check(
        &bought,
        &UTC_NOW,
        &[
            ("last_purchase_at before \"2024-05-01T10:00:00Z\"", false),
            ("last_purchase_at before \"2024-05-01T10:00:00.001Z\"", true),
            ("last_purchase_at after \"2024-05-01T10:00:00Z\"", false),
            ("last_purchase_at after \"2024-05-01T09:59:59.999Z\"", true),
            ("last_purchase_at after \"2024-05-01T11:59:59+02:00\"", true),
            // A date alone is midnight UTC.
            ("last_purchase_at before \"2024-05-02\"", true),
            ("last_purchase_at after \"2024-05-01\"", true),
            ("last_purchase_at before \"2024-05-01\"", false),
            (
                "last_purchase_at between \"2024-05-01T10:00:00Z\" and \"2024-05-01T10:00:00Z\"",
                true,
            ),
            (
                "last_purchase_at between \"2024-05-02\" and \"2024-05-01\"",
                false,
            ),
            ("last_purchase_at before 9d ago", true),
            ("last_purchase_at before 10d ago", false),
            ("last_purchase_at after 10d ago", true),
            ("last_purchase_at after 218h ago", false),
            ("last_purchase_at after 13081m ago", true),
            ("last_purchase_at between 2w ago and 1w ago", true),
            ("last_purchase_at before 1d from now", true),
            ("last_purchase_at within_last 10d", true),
            ("last_purchase_at within_last 9d", false),
            ("last_purchase_at within_last 218h", true), // exactly now − 218h: inclusive
            ("last_purchase_at not_within_last 9d", true),
            ("last_purchase_at not_within_last 10d", false),
            ("last_purchase_at on \"2024-05-01\"", true),
            ("last_purchase_at on \"2024-05-02\"", false),
            ("last_purchase_at exists", true),
        ],
    );
    let future = customer(vec![(
        LAST_PURCHASE_AT,
        Value::Datetime(ms("2024-05-11T00:00:00Z")),
    )]);
    check(
        &future,
        &UTC_NOW,
        &[
            ("last_purchase_at within_last 30d", false), // future values excluded
            ("last_purchase_at not_within_last 30d", true),
            ("last_purchase_at after 1d from now", false),
            ("last_purchase_at after 11h from now", true),
            ("last_purchase_at within_last 0m", false),
        ],
    );
    let now_exactly = customer(vec![(LAST_PURCHASE_AT, Value::Datetime(ms(UTC_NOW.now)))]);
    check(
        &now_exactly,
        &UTC_NOW,
        &[
            ("last_purchase_at within_last 0m", true),
            ("last_purchase_at after 0d ago", false),
        ],
    );
    check(
        &nobody(),
        &UTC_NOW,
        &[
            ("last_purchase_at before 1d from now", false),
            ("last_purchase_at after \"0001-01-01\"", false),
            ("last_purchase_at within_last 1000w", false),
            ("last_purchase_at not_within_last 1d", false),
            ("last_purchase_at on \"2024-05-01\"", false),
            ("last_purchase_at anniversary within 366d", false),
            ("last_purchase_at not_exists", true),
        ],
    );
}

#[test]
fn calendar_dates_of_datetimes_are_read_in_the_app_time_zone() {
    // 23:30Z on 1 May is 2 May in Madrid (+02:00) and 19:30 on 1 May in New York.
    let late = customer(vec![(
        LAST_PURCHASE_AT,
        Value::Datetime(ms("2024-05-01T23:30:00Z")),
    )]);
    let madrid = At {
        now: "2024-05-10T12:00:00Z",
        tz: "Europe/Madrid",
    };
    let new_york = At {
        now: "2024-05-10T12:00:00Z",
        tz: "America/New_York",
    };
    check(
        &late,
        &UTC_NOW,
        &[("last_purchase_at on \"2024-05-01\"", true)],
    );
    check(
        &late,
        &madrid,
        &[
            ("last_purchase_at on \"2024-05-02\"", true),
            ("last_purchase_at on \"2024-05-01\"", false),
            // Absolute bounds are instants whatever the zone: a date alone is midnight UTC.
            ("last_purchase_at before \"2024-05-02\"", true),
        ],
    );
    check(
        &late,
        &new_york,
        &[("last_purchase_at on \"2024-05-01\"", true)],
    );

    // São Paulo turned its clocks back from 00:00 to 23:00 on 17 February 2019: 02:30Z
    // that night is 23:30 on the 16th again.
    let sao_paulo = At {
        now: "2019-03-01T12:00:00Z",
        tz: "America/Sao_Paulo",
    };
    let repeated = customer(vec![(
        LAST_PURCHASE_AT,
        Value::Datetime(ms("2019-02-17T02:30:00Z")),
    )]);
    check(
        &repeated,
        &sao_paulo,
        &[
            ("last_purchase_at on \"2019-02-16\"", true),
            ("last_purchase_at on \"2019-02-17\"", false),
        ],
    );
    let first_of_17th = customer(vec![(
        LAST_PURCHASE_AT,
        Value::Datetime(ms("2019-02-17T03:00:00Z")),
    )]);
    check(
        &first_of_17th,
        &sao_paulo,
        &[("last_purchase_at on \"2019-02-17\"", true)],
    );

    // Apia skipped 30 December 2011 entirely.
    let apia = At {
        now: "2012-01-15T00:00:00Z",
        tz: "Pacific/Apia",
    };
    let around = customer(vec![(
        LAST_PURCHASE_AT,
        Value::Datetime(ms("2011-12-30T10:00:00Z")),
    )]);
    check(
        &around,
        &apia,
        &[
            ("last_purchase_at on \"2011-12-30\"", false),
            ("last_purchase_at on \"2011-12-31\"", true),
        ],
    );
}

#[test]
fn date_operators() {
    let born = customer(vec![
        (BIRTHDATE, Value::Date(day("1990-05-10"))),
        (SIGNUP_DATE, Value::Date(day("2024-05-08"))),
    ]);
    check(
        &born,
        &UTC_NOW,
        &[
            ("birthdate before \"1990-05-10\"", false),
            ("birthdate before \"1990-05-11\"", true),
            ("birthdate after \"1990-05-09\"", true),
            ("birthdate after \"1990-05-10\"", false),
            ("birthdate between \"1990-05-10\" and \"1990-05-10\"", true),
            ("birthdate between \"1990-05-11\" and \"1990-05-10\"", false),
            ("birthdate on \"1990-05-10\"", true),
            ("birthdate on \"1990-05-11\"", false),
            ("birthdate anniversary", true),
            ("birthdate before 34w ago", true),
            // Days on a date field are calendar days from today (2024-05-10).
            ("signup_date within_last 2d", true),
            ("signup_date within_last 1d", false),
            ("signup_date not_within_last 1d", true),
            ("signup_date not_within_last 1w", false),
            ("signup_date after 3d ago", true),
            ("signup_date after 2d ago", false),
            ("signup_date before 2d ago", false),
            ("signup_date between 2d ago and 2d ago", true),
            ("signup_date between 1w ago and 1d from now", true),
        ],
    );
    let later = customer(vec![(SIGNUP_DATE, Value::Date(day("2024-05-11")))]);
    check(
        &later,
        &UTC_NOW,
        &[
            ("signup_date within_last 30d", false),
            ("signup_date not_within_last 30d", true),
            ("signup_date after 0d from now", true),
            ("signup_date before 2d from now", true),
        ],
    );
    check(
        &nobody(),
        &UTC_NOW,
        &[
            ("birthdate anniversary", false),
            ("birthdate before \"9999-12-31\"", false),
            ("birthdate not_within_last 1d", false),
            ("birthdate not_exists", true),
        ],
    );
}

#[test]
fn today_is_taken_in_the_app_time_zone() {
    // 23:00Z on 9 May is already 10 May in Madrid.
    let c = customer(vec![
        (BIRTHDATE, Value::Date(day("1990-05-10"))),
        (SIGNUP_DATE, Value::Date(day("2024-05-10"))),
    ]);
    let utc = At {
        now: "2024-05-09T23:00:00Z",
        tz: "UTC",
    };
    let madrid = At {
        now: "2024-05-09T23:00:00Z",
        tz: "Europe/Madrid",
    };
    check(
        &c,
        &utc,
        &[
            ("birthdate anniversary", false),
            ("birthdate anniversary within 1d", true),
            ("signup_date within_last 0d", false),
            ("signup_date after 0d ago", true),
        ],
    );
    check(
        &c,
        &madrid,
        &[
            ("birthdate anniversary", true),
            ("signup_date within_last 0d", true),
            ("signup_date after 0d ago", false),
        ],
    );
    // A datetime's anniversary uses its local date: 23:30Z on 10 May 1990 was 11 May in
    // Madrid (summer time, +02:00).
    let late = customer(vec![(
        LAST_PURCHASE_AT,
        Value::Datetime(ms("1990-05-10T23:30:00Z")),
    )]);
    check(&late, &UTC_NOW, &[("last_purchase_at anniversary", true)]);
    let madrid_noon = At {
        now: "2024-05-10T12:00:00Z",
        tz: "Europe/Madrid",
    };
    check(
        &late,
        &madrid_noon,
        &[
            ("last_purchase_at anniversary", false),
            ("last_purchase_at anniversary within 1d", true),
        ],
    );
}

#[test]
fn leap_day_anniversaries() {
    let leap = customer(vec![
        (BIRTHDATE, Value::Date(day("2000-02-29"))),
        (
            LAST_PURCHASE_AT,
            Value::Datetime(ms("2000-02-29T12:00:00Z")),
        ),
    ]);
    let at = |now| At { now, tz: "UTC" };
    for field in ["birthdate", "last_purchase_at"] {
        let plain = format!("{field} anniversary");
        let within = format!("{field} anniversary within 1d");
        let within_week = format!("{field} anniversary within 1w");
        check(&leap, &at("2023-02-28T12:00:00Z"), &[(&plain, true)]);
        check(&leap, &at("2023-03-01T12:00:00Z"), &[(&plain, false)]);
        check(
            &leap,
            &at("2024-02-28T12:00:00Z"),
            &[(&plain, false), (&within, true)],
        );
        check(&leap, &at("2024-02-29T12:00:00Z"), &[(&plain, true)]);
        check(
            &leap,
            &at("2024-03-01T12:00:00Z"),
            &[(&plain, false), (&within_week, false)],
        );
        check(&leap, &at("2023-02-22T12:00:00Z"), &[(&within_week, true)]);
        check(&leap, &at("2023-02-20T12:00:00Z"), &[(&within_week, false)]);
    }
    // A 28 February birthday is not celebrated on the 29th.
    let feb28 = customer(vec![(BIRTHDATE, Value::Date(day("1999-02-28")))]);
    check(
        &feb28,
        &at("2024-02-29T12:00:00Z"),
        &[("birthdate anniversary", false)],
    );
    check(
        &feb28,
        &at("2023-02-28T12:00:00Z"),
        &[("birthdate anniversary", true)],
    );
    // Windows run across the new year.
    let new_year = customer(vec![(BIRTHDATE, Value::Date(day("1985-01-02")))]);
    check(
        &new_year,
        &at("2024-12-30T12:00:00Z"),
        &[
            ("birthdate anniversary within 3d", true),
            ("birthdate anniversary within 2d", false),
        ],
    );
}

#[test]
fn built_in_attributes() {
    // customer(): customerId ana@example.com, created 2024-01-15T10:00Z, updated
    // 2024-05-01T08:30Z.
    check(
        &nobody(),
        &UTC_NOW,
        &[
            ("customerId = \"ana@example.com\"", true),
            ("customerId starts_with \"ANA\"", true),
            ("customerId in (\"x\", \"ana@example.com\")", true),
            ("customerId != \"ana@example.com\"", false),
            ("customerId exists", true),
            ("customerId not_exists", false),
            ("created_at before \"2024-02-01\"", true),
            ("created_at within_last 1d", false),
            ("created_at anniversary", false),
            ("updated_at on \"2024-05-01\"", true),
            ("updated_at within_last 10d", true),
            ("updated_at not_within_last 9d", true),
        ],
    );
}

#[test]
fn boolean_structure() {
    let c = customer(vec![
        (AGE, Value::Number(30.0)),
        (COUNTRY, Value::String("ES".into())),
    ]);
    check(
        &c,
        &UTC_NOW,
        &[
            ("age = 30 and country = \"ES\"", true),
            ("age = 31 and country = \"ES\"", false),
            ("age = 31 or country = \"ES\"", true),
            ("age = 31 or country = \"FR\"", false),
            // `and` binds tighter: true or (false and false).
            ("age = 30 or age = 31 and country = \"FR\"", true),
            ("(age = 30 or age = 31) and country = \"FR\"", false),
            ("not age = 30 or country = \"ES\"", true),
            ("not (age = 30 or country = \"ES\")", false),
            ("not not age = 30", true),
        ],
    );
}
