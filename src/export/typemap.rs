//! Arrow types → warehouse types, and which type changes a target column can take.
//!
//! | Arrow (lake)                  | Snowflake        | BigQuery                 |
//! | ----------------------------- | ---------------- | ------------------------ |
//! | Utf8 / LargeUtf8 / Utf8View   | `VARCHAR`        | `STRING`                 |
//! | Int8..Int64, UInt8..UInt32    | `NUMBER(38,0)`   | `INT64`                  |
//! | UInt64                        | `NUMBER(20,0)`   | `NUMERIC`                |
//! | Float16/32/64                 | `FLOAT`          | `FLOAT64`                |
//! | Decimal128(p,s)               | `NUMBER(p,s)`    | `NUMERIC` if p−s ≤ 29 and s ≤ 9, else `BIGNUMERIC` |
//! | Boolean                       | `BOOLEAN`        | `BOOL`                   |
//! | Date32 / Date64               | `DATE`           | `DATE`                   |
//! | Timestamp with a time zone    | `TIMESTAMP_TZ`   | `TIMESTAMP`              |
//! | Timestamp without a zone      | `TIMESTAMP_NTZ`  | `DATETIME`               |
//! | Time32 / Time64               | `TIME`           | `TIME`                   |
//! | Binary                        | `BINARY`         | `BYTES`                  |
//! | List<T>                       | `ARRAY`          | `T` with mode `REPEATED` (a list of lists: `JSON`) |
//! | Struct                        | `OBJECT`         | `RECORD` with its fields |
//! | Map<K,V>                      | `OBJECT`         | `JSON` (staged as JSON text) |
//!
//! A target column may keep a wider type than the lake's (e.g. `FLOAT` for an int, `VARCHAR`
//! for anything textual, a larger `NUMBER`); a narrower or different one would lose data and
//! stops the export.

use arrow::datatypes::{DataType, Field};
use serde_json::{Value, json};

/// The Snowflake type of an Arrow type, or `None` if it has none.
pub fn snowflake_type(dt: &DataType) -> Option<String> {
    use DataType::*;
    Some(match dt {
        Utf8 | LargeUtf8 | Utf8View => "VARCHAR".into(),
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => "NUMBER(38,0)".into(),
        UInt64 => "NUMBER(20,0)".into(),
        Float16 | Float32 | Float64 => "FLOAT".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) if *p <= 38 && *s >= 0 => {
            format!("NUMBER({p},{s})")
        }
        Boolean => "BOOLEAN".into(),
        Date32 | Date64 => "DATE".into(),
        Timestamp(_, Some(tz)) if !tz.is_empty() => "TIMESTAMP_TZ".into(),
        Timestamp(_, _) => "TIMESTAMP_NTZ".into(),
        Time32(_) | Time64(_) => "TIME".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "BINARY".into(),
        List(_) | LargeList(_) | ListView(_) | FixedSizeList(_, _) => "ARRAY".into(),
        Struct(_) | Map(_, _) => "OBJECT".into(),
        Dictionary(_, v) => return snowflake_type(v),
        _ => return None,
    })
}

/// The BigQuery schema field (`{"name","type","mode"[,"fields"]}`) of an Arrow field.
pub fn bigquery_field(field: &Field) -> Option<Value> {
    let mode = if field.is_nullable() {
        "NULLABLE"
    } else {
        "REQUIRED"
    };
    bigquery_field_of(field.name(), field.data_type(), mode)
}

fn bigquery_field_of(name: &str, dt: &DataType, mode: &str) -> Option<Value> {
    use DataType::*;
    let scalar = |t: &str| Some(json!({"name": name, "type": t, "mode": mode}));
    match dt {
        List(item) | LargeList(item) | ListView(item) | FixedSizeList(item, _) => {
            if matches!(
                item.data_type(),
                List(_) | LargeList(_) | ListView(_) | FixedSizeList(..) | Map(..)
            ) {
                // BigQuery has no arrays of arrays.
                return scalar("JSON");
            }
            bigquery_field_of(name, item.data_type(), "REPEATED")
        }
        Struct(fields) => {
            let fields: Option<Vec<Value>> = fields.iter().map(|f| bigquery_field(f)).collect();
            Some(json!({"name": name, "type": "RECORD", "mode": mode, "fields": fields?}))
        }
        Map(_, _) => scalar("JSON"),
        Dictionary(_, v) => bigquery_field_of(name, v, mode),
        other => scalar(&bigquery_scalar(other)?),
    }
}

/// The BigQuery type of a non-nested Arrow type.
pub fn bigquery_scalar(dt: &DataType) -> Option<String> {
    use DataType::*;
    Some(match dt {
        Utf8 | LargeUtf8 | Utf8View => "STRING".into(),
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => "INT64".into(),
        UInt64 => "NUMERIC".into(),
        Float16 | Float32 | Float64 => "FLOAT64".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) if *s >= 0 => {
            let (p, s) = (*p as i32, *s as i32);
            if p - s <= 29 && s <= 9 {
                "NUMERIC".into()
            } else if p - s <= 38 && s <= 38 {
                "BIGNUMERIC".into()
            } else {
                return None;
            }
        }
        Boolean => "BOOL".into(),
        Date32 | Date64 => "DATE".into(),
        Timestamp(_, Some(tz)) if !tz.is_empty() => "TIMESTAMP".into(),
        Timestamp(_, _) => "DATETIME".into(),
        Time32(_) | Time64(_) => "TIME".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "BYTES".into(),
        Dictionary(_, v) => return bigquery_scalar(v),
        _ => return None,
    })
}

/// Whether `dt` (or a child) is a map, which BigQuery receives as JSON text.
pub fn needs_json_text(dt: &DataType) -> bool {
    use DataType::*;
    match dt {
        Map(..) => true,
        List(item) | LargeList(item) | ListView(item) | FixedSizeList(item, _) => matches!(
            item.data_type(),
            List(_) | LargeList(_) | ListView(_) | FixedSizeList(..) | Map(..)
        ),
        _ => false,
    }
}

/// Snowflake's spelling of a type as `DESCRIBE TABLE` shows it, reduced to what matters:
/// `VARCHAR(16777216)` → `VARCHAR`, `TIMESTAMP_TZ(9)` → `TIMESTAMP_TZ`, `NUMBER(38,0)` stays.
pub fn snowflake_normalize(t: &str) -> String {
    let t = t.trim().to_ascii_uppercase();
    let base = t.split('(').next().unwrap_or(&t).trim().to_string();
    let base = match base.as_str() {
        "TEXT" | "STRING" | "CHAR" | "CHARACTER" | "VARCHAR" => "VARCHAR",
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => {
            return "NUMBER(38,0)".into();
        }
        "DOUBLE" | "DOUBLE PRECISION" | "REAL" | "FLOAT4" | "FLOAT8" | "FLOAT" => "FLOAT",
        "DATETIME" | "TIMESTAMP" => "TIMESTAMP_NTZ",
        "DECIMAL" | "NUMERIC" | "NUMBER" => {
            let args = t.split_once('(').map(|(_, a)| a.trim_end_matches(')'));
            return match args {
                Some(a) => format!("NUMBER({})", a.replace(' ', "")),
                None => "NUMBER(38,0)".into(),
            };
        }
        "VARBINARY" => "BINARY",
        other => other,
    };
    base.to_string()
}

fn number_args(t: &str) -> Option<(i32, i32)> {
    let inner = t.strip_prefix("NUMBER(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// Whether a Snowflake column of type `target` holds every value of `source` (both as
/// [`snowflake_type`] / `DESCRIBE TABLE` spell them).
pub fn snowflake_holds(target: &str, source: &str) -> bool {
    let (t, s) = (snowflake_normalize(target), snowflake_normalize(source));
    if t == s || t == "VARIANT" {
        return true;
    }
    match (number_args(&t), number_args(&s)) {
        (Some((tp, ts)), Some((sp, ss))) => return ts >= ss && tp - ts >= sp - ss,
        (None, Some(_)) => return t == "FLOAT" || t == "VARCHAR",
        _ => {}
    }
    matches!(
        (t.as_str(), s.as_str()),
        (
            "VARCHAR",
            "BOOLEAN" | "DATE" | "TIME" | "TIMESTAMP_NTZ" | "TIMESTAMP_TZ" | "FLOAT"
        ) | ("TIMESTAMP_TZ" | "TIMESTAMP_LTZ", "TIMESTAMP_NTZ")
            | ("TIMESTAMP_TZ", "TIMESTAMP_LTZ")
            | ("TIMESTAMP_LTZ", "TIMESTAMP_TZ")
            | ("TIMESTAMP_NTZ" | "TIMESTAMP_TZ" | "TIMESTAMP_LTZ", "DATE")
    )
}

/// BigQuery's legacy and standard spellings reduced to one: `INTEGER` → `INT64`, ...
pub fn bigquery_normalize(t: &str) -> String {
    let t = t.trim().to_ascii_uppercase();
    match t.as_str() {
        "INTEGER" => "INT64".into(),
        "FLOAT" => "FLOAT64".into(),
        "BOOLEAN" => "BOOL".into(),
        "STRUCT" => "RECORD".into(),
        _ => t,
    }
}

/// Whether a BigQuery column of type `target` holds every value of `source`.
pub fn bigquery_holds(target: &str, source: &str) -> bool {
    let (t, s) = (bigquery_normalize(target), bigquery_normalize(source));
    t == s
        || matches!(
            (t.as_str(), s.as_str()),
            ("NUMERIC" | "BIGNUMERIC" | "FLOAT64", "INT64")
                | ("BIGNUMERIC", "NUMERIC")
                | ("STRING" | "JSON", "JSON" | "STRING")
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Fields, TimeUnit};
    use std::sync::Arc;

    fn list(t: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("element", t, true)))
    }

    fn map() -> DataType {
        crate::project::schema::parse_type("map<string,string>").unwrap()
    }

    fn strct() -> DataType {
        DataType::Struct(Fields::from(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn snowflake_maps_every_lake_type() {
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let cases: Vec<(DataType, &str)> = vec![
            (DataType::Utf8, "VARCHAR"),
            (DataType::Utf8View, "VARCHAR"),
            (DataType::Int32, "NUMBER(38,0)"),
            (DataType::Int64, "NUMBER(38,0)"),
            (DataType::UInt64, "NUMBER(20,0)"),
            (DataType::Float64, "FLOAT"),
            (DataType::Decimal128(18, 2), "NUMBER(18,2)"),
            (DataType::Boolean, "BOOLEAN"),
            (DataType::Date32, "DATE"),
            (utc, "TIMESTAMP_TZ"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "TIMESTAMP_NTZ",
            ),
            (DataType::Binary, "BINARY"),
            (list(DataType::Utf8), "ARRAY"),
            (strct(), "OBJECT"),
            (map(), "OBJECT"),
        ];
        for (dt, want) in cases {
            assert_eq!(snowflake_type(&dt).as_deref(), Some(want), "{dt}");
        }
        assert_eq!(snowflake_type(&DataType::Null), None);
    }

    #[test]
    fn bigquery_maps_every_lake_type() {
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let cases: Vec<(DataType, &str)> = vec![
            (DataType::Utf8, "STRING"),
            (DataType::Int32, "INT64"),
            (DataType::Int64, "INT64"),
            (DataType::UInt64, "NUMERIC"),
            (DataType::Float64, "FLOAT64"),
            (DataType::Decimal128(18, 2), "NUMERIC"),
            (DataType::Decimal128(38, 10), "BIGNUMERIC"),
            (DataType::Boolean, "BOOL"),
            (DataType::Date32, "DATE"),
            (utc, "TIMESTAMP"),
            (DataType::Timestamp(TimeUnit::Microsecond, None), "DATETIME"),
            (DataType::Binary, "BYTES"),
        ];
        for (dt, want) in cases {
            assert_eq!(bigquery_scalar(&dt).as_deref(), Some(want), "{dt}");
            let f = bigquery_field(&Field::new("c", dt.clone(), false)).unwrap();
            assert_eq!(f, json!({"name": "c", "type": want, "mode": "REQUIRED"}));
        }
    }

    #[test]
    fn bigquery_nested_types_are_repeated_records_and_json() {
        let f = bigquery_field(&Field::new("tags", list(DataType::Utf8), true)).unwrap();
        assert_eq!(
            f,
            json!({"name": "tags", "type": "STRING", "mode": "REPEATED"})
        );
        let f = bigquery_field(&Field::new("s", strct(), true)).unwrap();
        assert_eq!(
            f,
            json!({"name": "s", "type": "RECORD", "mode": "NULLABLE", "fields": [
                {"name": "a", "type": "INT64", "mode": "REQUIRED"},
                {"name": "b", "type": "STRING", "mode": "NULLABLE"}
            ]})
        );
        let f = bigquery_field(&Field::new("external_ids", map(), true)).unwrap();
        assert_eq!(f["type"], "JSON");
        assert!(needs_json_text(&map()));
        let nested = list(list(DataType::Int64));
        assert_eq!(
            bigquery_field(&Field::new("x", nested.clone(), true)).unwrap()["type"],
            "JSON"
        );
        assert!(needs_json_text(&nested));
        assert!(!needs_json_text(&list(DataType::Int64)));
    }

    #[test]
    fn snowflake_widening_is_allowed_and_narrowing_refused() {
        assert!(snowflake_holds("VARCHAR(16777216)", "VARCHAR"));
        assert!(snowflake_holds("NUMBER(38,0)", "NUMBER(38,0)"));
        assert!(snowflake_holds("NUMBER(38,4)", "NUMBER(18,2)"));
        assert!(snowflake_holds("FLOAT", "NUMBER(38,0)"));
        assert!(snowflake_holds("VARCHAR", "NUMBER(38,0)"));
        assert!(snowflake_holds("TIMESTAMP_TZ(9)", "TIMESTAMP_NTZ"));
        assert!(snowflake_holds("VARIANT", "OBJECT"));
        assert!(!snowflake_holds("NUMBER(38,0)", "FLOAT"));
        assert!(!snowflake_holds("NUMBER(18,2)", "NUMBER(38,0)"));
        assert!(!snowflake_holds("NUMBER(38,0)", "VARCHAR"));
        assert!(!snowflake_holds("DATE", "TIMESTAMP_TZ"));
        assert!(!snowflake_holds("BOOLEAN", "VARCHAR"));
    }

    #[test]
    fn bigquery_widening_is_allowed_and_narrowing_refused() {
        assert!(bigquery_holds("INTEGER", "INT64"));
        assert!(bigquery_holds("FLOAT", "INT64"));
        assert!(bigquery_holds("BIGNUMERIC", "NUMERIC"));
        assert!(!bigquery_holds("INT64", "FLOAT64"));
        assert!(!bigquery_holds("DATE", "TIMESTAMP"));
        assert!(!bigquery_holds("INT64", "STRING"));
    }
}
