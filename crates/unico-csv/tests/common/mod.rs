//! Shared helpers of the integration tests: a test schema and a text rendering of an import.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{self, Read};

use unico_core::{FieldDef, FieldId, FieldName, FieldType, Schema};
use unico_csv::{FileError, ImportReader, LineEnding, Row, RowMut, RowOp, Shape};

/// email (string), age (number), signup_at (datetime), birthday (date), city (string).
pub fn schema() -> Schema {
    schema_of(&[
        ("email", FieldType::String),
        ("age", FieldType::Number),
        ("signup_at", FieldType::Datetime),
        ("birthday", FieldType::Date),
        ("city", FieldType::String),
    ])
}

pub fn schema_of(fields: &[(&str, FieldType)]) -> Schema {
    Schema::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, (name, field_type))| FieldDef {
                id: FieldId(i as u32 + 1),
                name: FieldName::parse(name).expect("valid field name"),
                field_type: *field_type,
                created_at: 0,
                computed: None,
            })
            .collect(),
    )
}

/// Hands out its bytes one at a time, to cross every buffer boundary.
pub struct OneByte<'a>(pub &'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// Runs a whole import and renders what it saw, one line per record.
pub fn render(input: impl Read, schema: &Schema) -> String {
    render_with(input, schema, |reader| reader.next())
}

/// Like [`render`], through [`ImportReader::next_row_mut`], moving each row's changes out
/// of the reader as the server's import does.
pub fn render_moved(input: impl Read, schema: &Schema) -> String {
    render_with(input, schema, |reader| {
        reader
            .next_row_mut()
            .map(|row| {
                row.map(|row| match row {
                    RowMut::Op(op) => {
                        let mut changes = Vec::new();
                        changes.append(op.changes);
                        Row::Op(RowOp {
                            line: op.line,
                            customer_id: op.customer_id.clone(),
                            changes,
                            consents: op.consents.to_vec(),
                        })
                    }
                    RowMut::Invalid(e) => Row::Invalid(e),
                })
            })
            .transpose()
    })
}

fn render_with<R: Read>(
    input: R,
    schema: &Schema,
    mut next: impl FnMut(&mut ImportReader<R>) -> Option<Result<Row, FileError>>,
) -> String {
    let mut out = String::new();
    let mut reader = match ImportReader::new(input, schema) {
        Ok(reader) => reader,
        Err(e) => return format!("file error: {e}\n"),
    };
    let d = reader.dialect();
    let ending = match d.line_ending {
        Some(LineEnding::Lf) => "LF",
        Some(LineEnding::CrLf) => "CRLF",
        Some(LineEnding::Cr) => "CR",
        None => "none",
    };
    let shape = match reader.shape() {
        Shape::Long => "long".to_owned(),
        Shape::IdsOnly => "ids only".to_owned(),
        Shape::Wide(columns) => format!("wide ({} columns)", columns.len()),
    };
    let bom = if d.bom { ", BOM" } else { "" };
    let _ = writeln!(
        out,
        "{} separator, {ending} endings{bom}, {shape}",
        d.separator
    );
    while let Some(row) = next(&mut reader) {
        match row {
            Ok(Row::Op(op)) => {
                let changes: Vec<String> = op
                    .changes
                    .iter()
                    .map(|c| {
                        let name = schema.by_id(c.field).map_or("?", |f| f.name.as_str());
                        match &c.value {
                            Some(v) => format!("{name}={v:?}"),
                            None => format!("{name} removed"),
                        }
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{}: {:?} [{}]",
                    op.line,
                    op.customer_id.as_str(),
                    changes.join(", ")
                );
            }
            Ok(Row::Invalid(e)) => {
                let _ = writeln!(
                    out,
                    "{}: invalid [{}] {:?}: {}",
                    e.line, e.column, e.value, e.message
                );
            }
            Err(e) => {
                let _ = writeln!(out, "file error: {e}");
            }
        }
    }
    out
}

/// Renders an import read all at once and one byte at a time; both must agree.
pub fn import(bytes: &[u8], schema: &Schema) -> String {
    let whole = render(bytes, schema);
    let trickle = render(OneByte(bytes), schema);
    assert_eq!(
        whole, trickle,
        "reading one byte at a time changed the outcome"
    );
    assert_eq!(
        whole,
        render_moved(bytes, schema),
        "moving the changes out of the reader changed the outcome"
    );
    whole
}

pub fn file_error(result: Result<ImportReader<&[u8]>, FileError>) -> String {
    match result {
        Ok(_) => "no error".to_owned(),
        Err(e) => e.to_string(),
    }
}
