//! JSON records → Arrow: the page builder every API connector uses.
//!
//! Each record is a flat map of vendor fields (nested objects and arrays become JSON text
//! columns). A column's type comes from the vendor's field metadata when the connector gives a
//! hint (Salesforce describe, HubSpot properties, Pipedrive field lists), else it is inferred
//! from the page's values. Column names are the snake_case of the field names. Every record
//! also keeps its whole JSON text in `source_data`, and `_deleted` marks tombstones.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::SourceError;
use super::naming::{RESERVED, snake_case};
use super::source::{CursorRole, Page};

/// The landed type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Boolean,
    Int,
    Float,
    Date,
    Timestamp,
    Text,
    /// Objects and arrays, as JSON text.
    Json,
}

impl FieldKind {
    pub fn data_type(self) -> DataType {
        match self {
            FieldKind::Boolean => DataType::Boolean,
            FieldKind::Int => DataType::Int64,
            FieldKind::Float => DataType::Float64,
            FieldKind::Date => DataType::Date32,
            FieldKind::Timestamp => timestamp_type(),
            FieldKind::Text | FieldKind::Json => DataType::Utf8,
        }
    }

    /// The kind of one JSON value, `None` for null.
    fn of(v: &Value) -> Option<FieldKind> {
        match v {
            Value::Null => None,
            Value::Bool(_) => Some(FieldKind::Boolean),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(FieldKind::Int),
            Value::Number(_) => Some(FieldKind::Float),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(if parse_date(s).is_some() {
                FieldKind::Date
            } else if parse_timestamp(s).is_some() {
                FieldKind::Timestamp
            } else {
                FieldKind::Text
            }),
            Value::Array(_) | Value::Object(_) => Some(FieldKind::Json),
        }
    }

    /// The narrowest kind holding both.
    fn join(self, other: FieldKind) -> FieldKind {
        use FieldKind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            (Json, _) | (_, Json) => Json,
            _ => Text,
        }
    }
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn parse_date(v: &str) -> Option<NaiveDate> {
    (v.len() == 10)
        .then(|| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
        .flatten()
}

/// RFC 3339, Salesforce's `2025-01-31T09:30:00.000+0000`, or `YYYY-MM-DD HH:MM:SS` read as UTC
/// (Pipedrive).
pub fn parse_timestamp(v: &str) -> Option<DateTime<Utc>> {
    if v.len() < 16 || !v.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t.and_utc());
        }
    }
    None
}

/// The array of records at `pointer` of a response body (`/data`, `/tickets`): null is an
/// empty page; absent, or not an array, is the reason the page is malformed.
pub fn records_at<'v>(body: &'v Value, pointer: &str) -> Result<&'v [Value], String> {
    match body.pointer(pointer) {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Null) => Ok(&[]),
        Some(_) => Err(format!("`{pointer}` is not an array")),
        None => Err(format!("the response has no `{pointer}` array")),
    }
}

/// Builds one page's record batch.
#[derive(Debug, Default)]
pub struct PageBuilder {
    /// Field name → kind from the vendor's metadata.
    hints: HashMap<String, FieldKind>,
    /// Fields in first-seen order, with their landed column names.
    fields: Vec<(String, String)>,
    index: HashMap<String, usize>,
    rows: Vec<(Map<String, Value>, String, bool)>,
}

impl PageBuilder {
    pub fn new(hints: HashMap<String, FieldKind>) -> Self {
        PageBuilder {
            hints,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds a record: `fields` are the columns to land, `original` the whole record as the
    /// vendor sent it (kept as `source_data`), `deleted` whether it is a tombstone.
    pub fn push(&mut self, fields: Map<String, Value>, original: &Value, deleted: bool) {
        for name in fields.keys() {
            if !self.index.contains_key(name) {
                let mut column = snake_case(name);
                if column.is_empty() {
                    column = "column".into();
                }
                if RESERVED.contains(&column.as_str()) || column == "_deleted" {
                    column = format!("src_{column}");
                }
                while self.fields.iter().any(|(_, c)| *c == column) {
                    column.push('_');
                }
                self.index.insert(name.clone(), self.fields.len());
                self.fields.push((name.clone(), column));
            }
        }
        self.rows.push((fields, original.to_string(), deleted));
    }

    /// Adds a whole record, field by field (`record` must be an object).
    pub fn push_record(&mut self, record: &Value, deleted: bool) -> Result<(), String> {
        match record.as_object() {
            Some(fields) => {
                self.push(fields.clone(), record, deleted);
                Ok(())
            }
            None => Err(format!(
                "record {} of the page is not an object",
                self.len()
            )),
        }
    }

    /// Finishes the batch into a [`Page`] read from `url` (redacted) by `connection`, whose
    /// cursor values count as `cursor` says.
    pub fn into_page(
        self,
        connection: &str,
        url: &str,
        cursor: Option<CursorRole>,
    ) -> Result<Page, SourceError> {
        let (batch, coerced) = self.finish().map_err(|e| SourceError::MalformedPage {
            connection: connection.to_string(),
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Page {
            batch,
            url: url.to_string(),
            coerced,
            cursor,
        })
    }

    /// The batch: one column per field seen, then `source_data` and `_deleted`. Fields whose
    /// every value is null are left out (they appear once a page carries a value), so an empty
    /// column never fixes a wrong type. Returns the batch and the count of values that did not
    /// fit their column's type (landed as null, kept in `source_data`).
    pub fn finish(self) -> Result<(RecordBatch, u64), arrow::error::ArrowError> {
        let mut coerced_to_null = 0;
        let n = self.rows.len();
        let mut schema_fields = Vec::with_capacity(self.fields.len() + 2);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.fields.len() + 2);
        for (name, column) in &self.fields {
            let values = || {
                self.rows
                    .iter()
                    .map(|(r, _, _)| r.get(name).unwrap_or(&Value::Null))
            };
            let kind = match self.hints.get(name) {
                Some(k) => *k,
                None => match values().filter_map(FieldKind::of).reduce(FieldKind::join) {
                    Some(k) => k,
                    None => continue,
                },
            };
            let (array, nulled) = build_column(kind, n, values());
            coerced_to_null += nulled;
            schema_fields.push(Field::new(column, kind.data_type(), true));
            columns.push(array);
        }
        let mut source_data =
            StringBuilder::with_capacity(n, self.rows.iter().map(|r| r.1.len()).sum());
        let mut deleted = BooleanBuilder::with_capacity(n);
        for (_, original, is_deleted) in &self.rows {
            source_data.append_value(original);
            deleted.append_value(*is_deleted);
        }
        schema_fields.push(Field::new("source_data", DataType::Utf8, false));
        columns.push(Arc::new(source_data.finish()));
        schema_fields.push(Field::new("_deleted", DataType::Boolean, false));
        columns.push(Arc::new(deleted.finish()));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns)?;
        Ok((batch, coerced_to_null))
    }
}

/// The text of a scalar value (`"12"`, `12`, `true` → `"12"`, `"12"`, `"true"`).
fn as_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.as_str().into()),
        other => Some(other.to_string().into()),
    }
}

/// One column of `kind` from `values`; returns it with the count of values that did not fit.
fn build_column<'a>(
    kind: FieldKind,
    n: usize,
    values: impl Iterator<Item = &'a Value>,
) -> (ArrayRef, u64) {
    let mut nulled = 0u64;
    let mut fit = |ok: bool, v: &Value| {
        if !ok && !v.is_null() && v.as_str() != Some("") {
            nulled += 1;
        }
    };
    let array: ArrayRef = match kind {
        FieldKind::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in values {
                let parsed = match v {
                    Value::Bool(x) => Some(*x),
                    Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
                    Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
                    Value::Number(x) => x.as_i64().map(|i| i != 0),
                    _ => None,
                };
                fit(parsed.is_some(), v);
                b.append_option(parsed);
            }
            Arc::new(b.finish())
        }
        FieldKind::Int => {
            let mut b = Int64Builder::with_capacity(n);
            for v in values {
                let parsed = match v {
                    Value::Number(x) => x.as_i64().or_else(|| {
                        x.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    }),
                    Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| {
                        s.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    }),
                    _ => None,
                };
                fit(parsed.is_some(), v);
                b.append_option(parsed);
            }
            Arc::new(b.finish())
        }
        FieldKind::Float => {
            let mut b = Float64Builder::with_capacity(n);
            for v in values {
                let parsed = match v {
                    Value::Number(x) => x.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                    _ => None,
                };
                fit(parsed.is_some(), v);
                b.append_option(parsed);
            }
            Arc::new(b.finish())
        }
        FieldKind::Date => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            let mut b = Date32Builder::with_capacity(n);
            for v in values {
                let parsed = v.as_str().and_then(|s| {
                    parse_date(s).or_else(|| parse_timestamp(s).map(|t| t.date_naive()))
                });
                fit(parsed.is_some(), v);
                b.append_option(parsed.map(|d| (d - epoch).num_days() as i32));
            }
            Arc::new(b.finish())
        }
        FieldKind::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
            for v in values {
                let parsed = match v {
                    Value::String(s) => parse_timestamp(s).or_else(|| {
                        parse_date(s)
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|t| t.and_utc())
                            .or_else(|| epoch_time(s.trim().parse::<i64>().ok()?))
                    }),
                    Value::Number(x) => x.as_i64().and_then(epoch_time),
                    _ => None,
                };
                fit(parsed.is_some(), v);
                b.append_option(parsed.map(|t| t.timestamp_micros()));
            }
            Arc::new(b.finish())
        }
        FieldKind::Text | FieldKind::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in values {
                match v {
                    Value::Array(_) | Value::Object(_) => b.append_value(v.to_string()),
                    other => b.append_option(as_text(other)),
                }
            }
            Arc::new(b.finish())
        }
    };
    (array, nulled)
}

/// Epoch milliseconds (HubSpot's timestamps in some endpoints) or epoch seconds (Stripe's
/// `created`, Zendesk's export times) when plausibly in 1990..2100: the two ranges do not
/// overlap, so the magnitude tells the unit.
fn epoch_time(n: i64) -> Option<DateTime<Utc>> {
    if (631_152_000..4_102_444_800).contains(&n) {
        return DateTime::from_timestamp(n, 0);
    }
    (631_152_000_000..4_102_444_800_000)
        .contains(&n)
        .then(|| DateTime::from_timestamp_millis(n))
        .flatten()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    use serde_json::json;

    use super::*;

    fn page(records: &[Value], hints: &[(&str, FieldKind)]) -> (RecordBatch, u64) {
        let mut b = PageBuilder::new(hints.iter().map(|(k, v)| (k.to_string(), *v)).collect());
        for r in records {
            b.push(r.as_object().unwrap().clone(), r, false);
        }
        b.finish().unwrap()
    }

    #[test]
    fn kinds_come_from_values_and_hints() {
        let records = [
            json!({"Id": "006A", "Amount": 100, "IsWon": true, "CloseDate": "2025-01-31",
                   "SystemModstamp": "2025-01-31T09:30:00.000+0000", "attributes": {"type": "Opportunity"}}),
            json!({"Id": "006B", "Amount": 12.5, "IsWon": false, "CloseDate": null,
                   "SystemModstamp": "2025-02-01T10:00:00Z", "attributes": {"type": "Opportunity"}}),
        ];
        let (batch, nulled) = page(&records, &[("hs_count", FieldKind::Int)]);
        assert_eq!(nulled, 0);
        let s = batch.schema();
        assert_eq!(
            s.field_with_name("amount").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(
            s.field_with_name("is_won").unwrap().data_type(),
            &DataType::Boolean
        );
        assert_eq!(
            s.field_with_name("close_date").unwrap().data_type(),
            &DataType::Date32
        );
        assert_eq!(
            s.field_with_name("system_modstamp").unwrap().data_type(),
            &timestamp_type()
        );
        assert_eq!(
            s.field_with_name("attributes").unwrap().data_type(),
            &DataType::Utf8
        );
        let amounts = batch
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(amounts.value(1), 12.5);
        assert!(batch.column_by_name("_deleted").is_some());
        assert!(batch.column_by_name("source_data").is_some());
    }

    #[test]
    fn hinted_strings_are_parsed_and_misfits_counted() {
        let records = [
            json!({"amount": "1500", "hs_object_id": "9200000003"}),
            json!({"amount": "n/a", "hs_object_id": "9200000004"}),
        ];
        let (batch, nulled) = page(
            &records,
            &[("amount", FieldKind::Int), ("hs_object_id", FieldKind::Int)],
        );
        assert_eq!(nulled, 1);
        let amounts = batch
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(amounts.value(0), 1500);
        assert!(amounts.is_null(1));
    }

    #[test]
    fn all_null_fields_are_left_out() {
        let (batch, _) = page(&[json!({"a": 1, "b": null})], &[]);
        assert!(batch.column_by_name("b").is_none());
    }

    #[test]
    fn timestamps_in_vendor_formats() {
        assert!(parse_timestamp("2025-01-31T09:30:00.000+0000").is_some());
        assert!(parse_timestamp("2025-01-31T09:30:00.123Z").is_some());
        assert!(parse_timestamp("2025-01-31 09:30:00").is_some());
        assert!(parse_timestamp("hello world, a long text").is_none());
    }

    #[test]
    fn hinted_epoch_numbers_are_seconds_or_milliseconds_by_magnitude() {
        let records = [
            json!({"created": 1_736_000_000}),
            json!({"created": 1_736_000_000_000_i64}),
            json!({"created": 12}),
        ];
        let (batch, nulled) = page(&records, &[("created", FieldKind::Timestamp)]);
        assert_eq!(nulled, 1);
        let created = batch
            .column_by_name("created")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(created.value(0), 1_736_000_000_000_000);
        assert_eq!(created.value(1), 1_736_000_000_000_000);
        assert!(created.is_null(2));
    }
}
