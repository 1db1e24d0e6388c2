//! Export: exact output of both shapes, formula neutralisation and raw mode.

mod common;

use common::{import, schema};
use unico_core::{Customer, CustomerId, FieldId, Value};
use unico_csv::{ExportOptions, ExportShape, Separator, export};

fn customer(id: &str, fields: Vec<(u32, Value)>) -> Customer {
    Customer {
        id: 1,
        customer_id: CustomerId::parse(id).expect("valid customerId"),
        created_at: 0,
        updated_at: 0,
        fields: fields.into_iter().map(|(f, v)| (FieldId(f), v)).collect(),
    }
}

fn customers() -> Vec<Customer> {
    vec![
        customer(
            "c1",
            vec![
                (1, Value::String("=HYPERLINK(\"x\")".into())),
                (2, Value::Number(-3.5)),
                (3, Value::Datetime(1_709_648_530_123)),
                (4, Value::Date(6380)),
                (5, Value::String("Washington, D.C.".into())),
            ],
        ),
        customer("c2", vec![]),
        customer(
            "+34600",
            vec![(5, Value::String("\tx".into())), (9, Value::Number(1.0))],
        ),
        customer(
            "c4",
            vec![
                (1, Value::String("-1".into())),
                (5, Value::String("@me\nline".into())),
            ],
        ),
    ]
}

fn run(shape: ExportShape, raw: bool, separator: Separator) -> String {
    let options = ExportOptions {
        shape,
        raw,
        separator,
    };
    let (stats, out) = export(Vec::new(), &schema(), customers(), options).expect("export");
    assert_eq!(stats.customers, 4);
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn long_export_neutralises_formulas_in_text_cells_only() {
    assert_eq!(
        run(ExportShape::Long, false, Separator::Comma),
        "customerId,fieldName,fieldValue
c1,email,\"'=HYPERLINK(\"\"x\"\")\"
c1,age,-3.5
c1,signup_at,2024-03-05T14:22:10.123Z
c1,birthday,1987-06-21
c1,city,\"Washington, D.C.\"
c2,,
'+34600,city,'\tx
c4,email,'-1
c4,city,\"'@me
line\"
"
    );
}

#[test]
fn wide_export_has_a_column_per_field_in_schema_order() {
    assert_eq!(
        run(ExportShape::Wide, false, Separator::Comma),
        "customerId,email,age,signup_at,birthday,city
c1,\"'=HYPERLINK(\"\"x\"\")\",-3.5,2024-03-05T14:22:10.123Z,1987-06-21,\"Washington, D.C.\"
c2,,,,,
'+34600,,,,,'\tx
c4,'-1,,,,\"'@me
line\"
"
    );
}

#[test]
fn raw_semicolon_export_writes_cells_unchanged() {
    assert_eq!(
        run(ExportShape::Wide, true, Separator::Semicolon),
        "customerId;email;age;signup_at;birthday;city
c1;\"=HYPERLINK(\"\"x\"\")\";-3.5;2024-03-05T14:22:10.123Z;1987-06-21;Washington, D.C.
c2;;;;;
+34600;;;;;\tx
c4;-1;;;;\"@me
line\"
"
    );
}

#[test]
fn raw_exports_import_back() {
    for shape in [ExportShape::Long, ExportShape::Wide] {
        let file = run(shape, true, Separator::Comma);
        let expected_long = "comma separator, LF endings, long
2: \"c1\" [email=String(\"=HYPERLINK(\\\"x\\\")\")]
3: \"c1\" [age=Number(-3.5)]
4: \"c1\" [signup_at=Datetime(1709648530123)]
5: \"c1\" [birthday=Date(6380)]
6: \"c1\" [city=String(\"Washington, D.C.\")]
7: \"c2\" []
8: \"+34600\" [city=String(\"\\tx\")]
9: \"c4\" [email=String(\"-1\")]
10: \"c4\" [city=String(\"@me\\nline\")]
";
        let expected_wide = "comma separator, LF endings, wide (5 columns)
2: \"c1\" [email=String(\"=HYPERLINK(\\\"x\\\")\"), age=Number(-3.5), signup_at=Datetime(1709648530123), birthday=Date(6380), city=String(\"Washington, D.C.\")]
3: \"c2\" []
4: \"+34600\" [city=String(\"\\tx\")]
5: \"c4\" [email=String(\"-1\"), city=String(\"@me\\nline\")]
";
        let expected = match shape {
            ExportShape::Long => expected_long,
            ExportShape::Wide => expected_wide,
        };
        assert_eq!(import(file.as_bytes(), &schema()), expected, "{shape:?}");
    }
}
