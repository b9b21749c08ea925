//! Values and types: a file's cells ([`Cell`]), the type inferred for a column ([`Kind`]) and
//! the typed Arrow builders that fill a column of a given type, refusing values that do not fit.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// One value of a record, borrowed from the row that holds it.
#[derive(Debug, Clone)]
pub(crate) enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    Bool(bool),
    Number(&'a serde_json::Number),
    /// A JSON object or array: lands as JSON text.
    Nested(&'a serde_json::Value),
}

impl<'a> Cell<'a> {
    pub(crate) fn of_json(v: &'a serde_json::Value) -> Cell<'a> {
        match v {
            serde_json::Value::Null => Cell::Null,
            serde_json::Value::Bool(b) => Cell::Bool(*b),
            serde_json::Value::Number(n) => Cell::Number(n),
            serde_json::Value::String(s) => Cell::Text(Cow::Borrowed(s)),
            nested => Cell::Nested(nested),
        }
    }

    /// The value as text, `None` for null and empty text.
    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Cell::Null => None,
            Cell::Text(t) if t.is_empty() => None,
            Cell::Text(t) => Some(Cow::Borrowed(t.as_ref())),
            Cell::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Cell::Number(n) => Some(Cow::Owned(n.to_string())),
            Cell::Nested(v) => Some(Cow::Owned(v.to_string())),
        }
    }

    /// The kind of this one value.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Cell::Null => Kind::Empty,
            Cell::Text(t) => Kind::of(t),
            Cell::Bool(_) => Kind::Boolean,
            Cell::Number(n) if n.is_i64() => Kind::Int,
            Cell::Number(_) => Kind::Float,
            Cell::Nested(_) => Kind::Text,
        }
    }
}

/// The type inferred for a column from every value of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Empty,
    Boolean,
    Int,
    Float,
    Date,
    Timestamp,
    Text,
}

impl Kind {
    pub(crate) fn of(v: &str) -> Kind {
        if v.is_empty() {
            Kind::Empty
        } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            Kind::Boolean
        } else if parse_int(v).is_some() {
            Kind::Int
        } else if parse_float(v).is_some() {
            Kind::Float
        } else if parse_date(v).is_some() {
            Kind::Date
        } else if parse_timestamp(v).is_some() {
            Kind::Timestamp
        } else {
            Kind::Text
        }
    }

    /// The narrowest kind holding both.
    pub(crate) fn join(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Empty, b) => b,
            (a, Empty) => a,
            (Int, Float) | (Float, Int) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Text,
        }
    }

    pub(crate) fn data_type(self) -> DataType {
        match self {
            Kind::Boolean => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => timestamp_type(),
            Kind::Empty | Kind::Text => DataType::Utf8,
        }
    }
}

pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Integers without leading zeros (ids such as `00123` stay text).
pub(crate) fn parse_int(v: &str) -> Option<i64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

pub(crate) fn parse_float(v: &str) -> Option<f64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.starts_with(|c: char| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."))
    {
        return None;
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

pub(crate) fn parse_date(v: &str) -> Option<NaiveDate> {
    if v.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// RFC 3339 (`2025-01-31T09:30:00.000Z`, offsets), Salesforce's `...000+0000`, or
/// `YYYY-MM-DD[T ]HH:MM[:SS[.f]]` read as UTC.
pub(crate) fn parse_timestamp(v: &str) -> Option<DateTime<Utc>> {
    if v.len() < 16 || !v.as_bytes()[0].is_ascii_digit() || v.as_bytes().get(4) != Some(&b'-') {
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
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t.and_utc());
        }
    }
    None
}

const EPOCH_DAYS_CE: i32 = 719_163; // days from 0001-01-01 to 1970-01-01

fn days(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - EPOCH_DAYS_CE
}

/// Whether a column of `data_type` can be filled from file values.
pub(crate) fn fillable(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int64
            | DataType::Int32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Decimal128(..)
    )
}

/// Fills one column of a batch with values of its type; a value that does not fit is
/// appended as null and reported, so that its record can be quarantined.
pub(crate) enum ColumnBuilder {
    Text(StringBuilder),
    Int64(Int64Builder),
    Int32(Int32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder, u8, i8),
}

impl ColumnBuilder {
    /// A builder for `data_type` (see [`fillable`]; any other type builds text).
    pub(crate) fn new(data_type: &DataType, rows: usize) -> Self {
        match data_type {
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
            DataType::Timestamp(..) => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
            DataType::Decimal128(p, s) => {
                ColumnBuilder::Decimal(Decimal128Builder::with_capacity(rows), *p, *s)
            }
            _ => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 16)),
        }
    }

    /// The Arrow type the builder produces.
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            ColumnBuilder::Text(_) => DataType::Utf8,
            ColumnBuilder::Int64(_) => DataType::Int64,
            ColumnBuilder::Int32(_) => DataType::Int32,
            ColumnBuilder::Float64(_) => DataType::Float64,
            ColumnBuilder::Boolean(_) => DataType::Boolean,
            ColumnBuilder::Date(_) => DataType::Date32,
            ColumnBuilder::Timestamp(_) => timestamp_type(),
            ColumnBuilder::Decimal(_, p, s) => DataType::Decimal128(*p, *s),
        }
    }

    /// Appends `cell`; when it does not fit, appends null and returns why.
    pub(crate) fn append(&mut self, cell: &Cell<'_>) -> Result<(), String> {
        let Some(text) = cell.text() else {
            self.append_null();
            return Ok(());
        };
        let fits = match self {
            ColumnBuilder::Text(b) => {
                b.append_value(&text);
                return Ok(());
            }
            ColumnBuilder::Int64(b) => {
                let v = match cell {
                    Cell::Number(n) => n.as_i64().or_else(|| integral(n.as_f64())),
                    _ => lenient_int(&text),
                };
                v.map(|v| b.append_value(v)).is_some()
            }
            ColumnBuilder::Int32(b) => {
                let v = match cell {
                    Cell::Number(n) => n.as_i64().or_else(|| integral(n.as_f64())),
                    _ => lenient_int(&text),
                };
                v.and_then(|v| i32::try_from(v).ok())
                    .map(|v| b.append_value(v))
                    .is_some()
            }
            ColumnBuilder::Float64(b) => {
                let v = match cell {
                    Cell::Number(n) => n.as_f64(),
                    Cell::Bool(_) => None,
                    _ => text.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                };
                v.map(|v| b.append_value(v)).is_some()
            }
            ColumnBuilder::Boolean(b) => {
                let v = match cell {
                    Cell::Bool(v) => Some(*v),
                    _ => parse_bool(&text),
                };
                v.map(|v| b.append_value(v)).is_some()
            }
            ColumnBuilder::Date(b) => {
                let v = match cell {
                    Cell::Text(_) => parse_date(text.trim()).or_else(|| {
                        parse_timestamp(text.trim())
                            .filter(|t| t.time() == chrono::NaiveTime::MIN)
                            .map(|t| t.date_naive())
                    }),
                    _ => None,
                };
                v.map(|d| b.append_value(days(d))).is_some()
            }
            ColumnBuilder::Timestamp(b) => {
                let v = match cell {
                    Cell::Text(_) => parse_timestamp(text.trim()).or_else(|| {
                        parse_date(text.trim())
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|t| t.and_utc())
                    }),
                    _ => None,
                };
                v.map(|t| b.append_value(t.timestamp_micros())).is_some()
            }
            ColumnBuilder::Decimal(b, p, s) => {
                let v = match cell {
                    Cell::Bool(_) | Cell::Nested(_) => None,
                    _ => arrow::compute::kernels::cast_utils::parse_decimal::<
                        arrow::datatypes::Decimal128Type,
                    >(text.trim(), *p, *s)
                    .ok(),
                };
                v.map(|v| b.append_value(v)).is_some()
            }
        };
        if fits {
            Ok(())
        } else {
            self.append_null();
            Err(format!(
                "`{}` is not {}",
                clip(&text),
                type_phrase(&self.data_type())
            ))
        }
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Decimal(b, _, _) => b.append_null(),
        }
    }

    pub(crate) fn finish(self) -> Result<ArrayRef, arrow::error::ArrowError> {
        Ok(match self {
            ColumnBuilder::Text(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Date(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(mut b, p, s) => {
                Arc::new(b.finish().with_precision_and_scale(p, s)?)
            }
        })
    }
}

/// Integers, also written with a trailing `.0` or leading zeros (a declared integer column).
fn lenient_int(v: &str) -> Option<i64> {
    let v = v.trim();
    v.parse::<i64>()
        .ok()
        .or_else(|| integral(v.parse::<f64>().ok()))
}

fn integral(f: Option<f64>) -> Option<i64> {
    f.filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
        .map(|f| f as i64)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) fn type_phrase(t: &DataType) -> String {
    match t {
        DataType::Int64 | DataType::Int32 => "an integer".into(),
        DataType::Float64 => "a number".into(),
        DataType::Boolean => "a boolean (true/false)".into(),
        DataType::Date32 => "a date (YYYY-MM-DD)".into(),
        DataType::Timestamp(..) => "a timestamp (RFC 3339 or YYYY-MM-DD HH:MM:SS)".into(),
        DataType::Decimal128(p, s) => format!("a decimal({p},{s})"),
        other => other.to_string(),
    }
}

/// A value shortened for a message.
fn clip(v: &str) -> Cow<'_, str> {
    if v.chars().count() <= 40 {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(format!("{}…", v.chars().take(40).collect::<String>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn kinds_are_inferred_and_joined() {
        assert_eq!(Kind::of("42"), Kind::Int);
        assert_eq!(Kind::of("0042"), Kind::Text);
        assert_eq!(Kind::of("4.5"), Kind::Float);
        assert_eq!(Kind::of("2025-01-31"), Kind::Date);
        assert_eq!(Kind::of("2025-01-31T09:30:00.000Z"), Kind::Timestamp);
        assert_eq!(Kind::of("2025-01-31T09:30:00.000+0000"), Kind::Timestamp);
        assert_eq!(Kind::of("2025-01-31 09:30"), Kind::Timestamp);
        assert_eq!(Kind::of("TRUE"), Kind::Boolean);
        assert_eq!(Kind::of("0061x00000AbCdEAAV"), Kind::Text);
        assert_eq!(Kind::of("+5"), Kind::Text);
        assert_eq!(Kind::Int.join(Kind::Float), Kind::Float);
        assert_eq!(Kind::Int.join(Kind::Empty), Kind::Int);
        assert_eq!(Kind::Date.join(Kind::Timestamp), Kind::Timestamp);
        assert_eq!(Kind::Int.join(Kind::Date), Kind::Text);
    }

    #[test]
    fn json_values_have_kinds() {
        let v: serde_json::Value = serde_json::json!([1, 1.5, true, "2025-01-31", {"a": 1}, null]);
        let kinds: Vec<Kind> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Cell::of_json(v).kind())
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::Int,
                Kind::Float,
                Kind::Boolean,
                Kind::Date,
                Kind::Text,
                Kind::Empty
            ]
        );
    }

    #[test]
    fn values_that_do_not_fit_the_type_are_refused_and_nulled() {
        let text = |s: &'static str| Cell::Text(Cow::Borrowed(s));
        let mut b = ColumnBuilder::new(&DataType::Int64, 4);
        assert!(b.append(&text("12")).is_ok());
        assert!(b.append(&text("12.0")).is_ok());
        let err = b.append(&text("n/a")).unwrap_err();
        assert!(err.contains("`n/a` is not an integer"), "{err}");
        assert!(b.append(&Cell::Null).is_ok());
        let a = b.finish().unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a.null_count(), 2);

        let mut b = ColumnBuilder::new(&timestamp_type(), 2);
        assert!(b.append(&text("2025-01-31")).is_ok());
        assert!(b.append(&text("yesterday")).is_err());
        let mut b = ColumnBuilder::new(&DataType::Date32, 2);
        assert!(b.append(&text("2025-01-31T00:00:00Z")).is_ok());
        assert!(b.append(&text("2025-01-31T10:00:00Z")).is_err());
        let mut b = ColumnBuilder::new(&DataType::Decimal128(10, 2), 2);
        assert!(b.append(&text("12.34")).is_ok());
        assert!(b.append(&text("abc")).is_err());
        let mut b = ColumnBuilder::new(&DataType::Utf8, 2);
        let n: serde_json::Value = serde_json::json!(5);
        b.append(&Cell::of_json(&n)).unwrap();
        let a = b.finish().unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(a.value(0), "5");
    }
}
