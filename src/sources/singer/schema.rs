//! JSON Schema (a Singer `SCHEMA` message, an Airbyte stream's `json_schema`) → landed kinds.

use std::collections::HashMap;

use serde_json::Value;

use super::super::records::FieldKind;

/// The kind of each top-level property of `schema` that has a clear one.
pub fn hints(schema: &Value) -> HashMap<String, FieldKind> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter_map(|(name, p)| kind(p).map(|k| (name.clone(), k)))
                .collect()
        })
        .unwrap_or_default()
}

/// One property's kind: `integer` → Int, `number` → Float, `boolean` → Boolean, `string` with
/// `format: date-time` → Timestamp (`date` → Date), other strings → Text, `object`/`array` →
/// JSON text. Nullable types (`["null", "integer"]`, `anyOf` with null) keep their kind; a
/// union of several kinds is Text (JSON when one is an object or array); no type, no hint.
fn kind(property: &Value) -> Option<FieldKind> {
    if let Some(options) = property
        .get("anyOf")
        .or_else(|| property.get("oneOf"))
        .and_then(Value::as_array)
    {
        return options
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .map(kind)
            .collect::<Option<Vec<_>>>()
            .and_then(|kinds| join(&kinds));
    }
    let types: Vec<&str> = match property.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let kinds: Vec<FieldKind> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "integer" => FieldKind::Int,
            "number" => FieldKind::Float,
            "boolean" => FieldKind::Boolean,
            "object" | "array" => FieldKind::Json,
            _ => string_kind(property),
        })
        .collect();
    join(&kinds)
}

fn string_kind(property: &Value) -> FieldKind {
    let format = property.get("format").and_then(Value::as_str);
    let airbyte = property.get("airbyte_type").and_then(Value::as_str);
    match (format, airbyte) {
        (_, Some("timestamp_with_timezone" | "timestamp_without_timezone")) => FieldKind::Timestamp,
        (Some("date-time"), _) => FieldKind::Timestamp,
        (Some("date"), _) => FieldKind::Date,
        _ => FieldKind::Text,
    }
}

fn join(kinds: &[FieldKind]) -> Option<FieldKind> {
    let first = *kinds.first()?;
    if kinds.iter().all(|k| *k == first) {
        return Some(first);
    }
    if kinds
        .iter()
        .all(|k| matches!(k, FieldKind::Int | FieldKind::Float))
    {
        return Some(FieldKind::Float);
    }
    if kinds.contains(&FieldKind::Json) {
        return Some(FieldKind::Json);
    }
    Some(FieldKind::Text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_schema_types_become_landed_kinds() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer"},
            "amount": {"type": ["null", "number"]},
            "active": {"type": ["boolean", "null"]},
            "updated_at": {"type": ["null", "string"], "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "name": {"type": "string"},
            "tags": {"type": ["null", "array"], "items": {"type": "string"}},
            "address": {"type": "object"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "null"}]},
            "mixed": {"type": ["string", "integer"]},
            "emitted": {"type": "string", "airbyte_type": "timestamp_with_timezone"},
            "untyped": {}
        }});
        let h = hints(&schema);
        let expect = [
            ("id", FieldKind::Int),
            ("amount", FieldKind::Float),
            ("active", FieldKind::Boolean),
            ("updated_at", FieldKind::Timestamp),
            ("day", FieldKind::Date),
            ("name", FieldKind::Text),
            ("tags", FieldKind::Json),
            ("address", FieldKind::Json),
            ("either", FieldKind::Float),
            ("mixed", FieldKind::Text),
            ("emitted", FieldKind::Timestamp),
        ];
        for (name, kind) in expect {
            assert_eq!(h.get(name), Some(&kind), "{name}");
        }
        assert!(!h.contains_key("untyped"));
    }
}
