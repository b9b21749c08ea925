//! Query results as JSON: Arrow batches to JSON objects (nulls kept), and those to typed rows.

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::json::WriterBuilder;
use arrow::json::writer::JsonArray;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One JSON object per row, every column present (null where the value is).
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut buf);
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| ArrowError::JsonError(e.to_string()))
}

/// The rows as `T`s (a missing optional column reads as `None`).
pub fn typed<T: DeserializeOwned>(rows: Vec<Map<String, Value>>) -> serde_json::Result<Vec<T>> {
    rows.into_iter()
        .map(|r| serde_json::from_value(Value::Object(r)))
        .collect()
}

/// A column of JSON text (`json` in schemas/) as a JSON value; text that does not parse stays
/// a string.
pub fn json_text(value: Option<String>) -> Option<Value> {
    value.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_keep_nulls_and_type() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
            ],
        )
        .unwrap();
        let rows = to_json_rows(&[batch]).unwrap();
        assert_eq!(
            Value::Object(rows[0].clone()),
            serde_json::json!({"id": "a", "amount": 1.5})
        );
        assert_eq!(
            Value::Object(rows[1].clone()),
            serde_json::json!({"id": "b", "amount": null})
        );
        assert!(to_json_rows(&[]).unwrap().is_empty());
        assert_eq!(json_text(Some("[1]".into())), Some(serde_json::json!([1])));
        assert_eq!(json_text(Some("x".into())), Some(Value::String("x".into())));
    }
}
