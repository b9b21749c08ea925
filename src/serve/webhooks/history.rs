//! Stage history of webhook stage changes.
//!
//! `staging.deal_stage_history` reads HubSpot's history from the `hs_v2_date_entered_<stage>`
//! columns of `raw.hubspot_deals` (set with the deal's row, in [`super::apply`]) and Salesforce's
//! from `raw.salesforce_opportunity_history`. A Salesforce `StageName` change therefore appends
//! an OpportunityHistory row here, in the columns the connector (or a file landing) gave the
//! table — `id`, `opportunity_id`, `stage_name`, `amount`, `probability`, `close_date`,
//! `forecast_category`, `created_date`, `created_by_id`, `system_modstamp`, `is_deleted`,
//! `source_data` and the landing columns — with the Opportunity's values after the change. The
//! row's `id` derives from the workspace, the Opportunity, the stage and the change's time, so
//! applying the change again (a replay, a re-sent notification, a batch retried after a crash)
//! merges onto the same row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use crate::serve::queue::EventRecord;
use crate::sources::records::timestamp_type;

/// Where Salesforce stage history lands.
pub const SALESFORCE_HISTORY: &str = "raw.salesforce_opportunity_history";

/// A stage a deal entered through a webhook change.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The deal's id in its CRM.
    pub deal: String,
    /// The stage before (`None`: the raw row had none).
    pub from: Option<String>,
    /// The stage entered, as the CRM names it.
    pub to: String,
    /// When (the event's time).
    pub at: DateTime<Utc>,
    /// The event's index in its batch.
    pub event: usize,
    /// The deal's raw row after the change, column → text.
    pub values: HashMap<String, Option<String>>,
}

/// The id of the history row of `opportunity` entering `stage` at `at`: 18 characters, like a
/// Salesforce id, `wh` and 16 hex digits of a UUIDv5 of the four.
pub fn history_id(
    workspace: &WorkspaceId,
    opportunity: &str,
    stage: &str,
    at: DateTime<Utc>,
) -> String {
    let name = format!(
        "{}\u{1f}{opportunity}\u{1f}{stage}\u{1f}{}",
        workspace.as_str(),
        at.timestamp_micros()
    );
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
    format!("wh{}", &uuid.simple().to_string()[..16])
}

/// The table's columns when the workspace's lake has no OpportunityHistory yet: the fields the
/// staging model reads and the sync landing's columns.
fn default_schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        text("id"),
        text("opportunity_id"),
        text("stage_name"),
        Field::new("amount", DataType::Float64, true),
        Field::new("probability", DataType::Float64, true),
        Field::new("close_date", DataType::Date32, true),
        text("forecast_category"),
        Field::new("created_date", timestamp_type(), true),
        text("created_by_id"),
        Field::new("system_modstamp", timestamp_type(), true),
        Field::new("is_deleted", DataType::Boolean, true),
        Field::new("source_data", DataType::Utf8, false),
        Field::new("_deleted", DataType::Boolean, false),
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("_synced_at", timestamp_type(), false),
        Field::new("_sync_id", DataType::Utf8, false),
    ]))
}

fn number(v: Option<&String>) -> Value {
    match v.and_then(|s| s.parse::<f64>().ok()) {
        Some(n) => json!(n),
        None => Value::Null,
    }
}

/// A history row's columns as text.
fn row_values(
    workspace: &WorkspaceId,
    t: &Transition,
    event: &EventRecord,
    now: DateTime<Utc>,
) -> HashMap<&'static str, Option<String>> {
    let id = history_id(workspace, &t.deal, &t.to, t.at);
    let at = t.at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let value = |c: &str| t.values.get(c).cloned().flatten();
    let mut original = Map::new();
    original.insert("Id".into(), json!(id));
    original.insert("OpportunityId".into(), json!(t.deal));
    original.insert("StageName".into(), json!(t.to));
    original.insert("Amount".into(), number(value("amount").as_ref()));
    original.insert("Probability".into(), number(value("probability").as_ref()));
    original.insert("CloseDate".into(), json!(value("close_date")));
    original.insert("ForecastCategory".into(), json!(value("forecast_category")));
    original.insert("CreatedDate".into(), json!(at));
    original.insert("CreatedById".into(), json!(value("last_modified_by_id")));
    original.insert("SystemModstamp".into(), json!(at));
    original.insert("IsDeleted".into(), json!(false));
    let lineage = format!("webhook:{}", event.event_id);
    HashMap::from([
        ("id", Some(id)),
        ("opportunity_id", Some(t.deal.clone())),
        ("stage_name", Some(t.to.clone())),
        ("amount", value("amount")),
        ("expected_revenue", value("expected_revenue")),
        ("probability", value("probability")),
        ("close_date", value("close_date")),
        ("forecast_category", value("forecast_category")),
        ("created_date", Some(at.clone())),
        ("created_by_id", value("last_modified_by_id")),
        ("system_modstamp", Some(at)),
        ("is_deleted", Some("false".into())),
        ("_deleted", Some("false".into())),
        ("workspace_id", Some(workspace.to_string())),
        ("source_data", Some(Value::Object(original).to_string())),
        (
            "_synced_at",
            Some(now.to_rfc3339_opts(SecondsFormat::Micros, true)),
        ),
        ("_sync_id", Some(lineage.clone())),
        ("_source_file", Some(lineage)),
        ("_source_record", Some(event.seq.to_string())),
    ])
}

/// `value` cast to `to` (one row); a value that does not cast is null (kept in `source_data`).
fn cast_one(value: Option<&str>, to: &DataType) -> Result<(ArrayRef, bool), String> {
    let text = arrow::array::StringArray::from(vec![value]);
    let out = arrow::compute::cast(&text, to).map_err(|e| e.to_string())?;
    let lost = value.is_some() && out.is_null(0);
    Ok((out, lost))
}

/// Merges a row per Salesforce transition into `raw.salesforce_opportunity_history` (creating
/// it when the lake has none); returns the rows merged.
pub async fn append_salesforce(
    lake: &Lake,
    workspace: &WorkspaceId,
    transitions: &[Transition],
    events: &[EventRecord],
) -> Result<usize, String> {
    if transitions.is_empty() {
        return Ok(0);
    }
    let dataset: DatasetRef = SALESFORCE_HISTORY
        .parse()
        .map_err(|e| format!("{SALESFORCE_HISTORY}: {e}"))?;
    let schema = lake
        .arrow_schema(&dataset)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_else(default_schema);
    let now = Utc::now();
    let rows: Vec<_> = transitions
        .iter()
        .map(|t| row_values(workspace, t, &events[t.event], now))
        .collect();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let mut parts = Vec::with_capacity(rows.len());
        for (row, t) in rows.iter().zip(transitions) {
            let value = row.get(field.name().as_str()).cloned().flatten();
            let (array, lost) = cast_one(value.as_deref(), field.data_type())
                .map_err(|e| format!("{SALESFORCE_HISTORY}.{}: {e}", field.name()))?;
            if lost {
                tracing::warn!(
                    deal = %t.deal,
                    column = %field.name(),
                    value = ?value,
                    "webhook history value does not fit its column: landed as null"
                );
            }
            if !field.is_nullable() && array.is_null(0) {
                return Err(format!(
                    "{SALESFORCE_HISTORY}: column {} is NOT NULL and the webhook change of opportunity {} has no value for it",
                    field.name(),
                    t.deal
                ));
            }
            parts.push(array);
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        columns.push(arrow::compute::concat(&refs).map_err(|e| e.to_string())?);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| format!("{SALESFORCE_HISTORY}: {e}"))?;
    lake.write(dataset)
        .with_mode(WriteMode::Merge)
        .with_merge_key(vec!["workspace_id".into(), "id".into()])
        .with_commit_metadata("revlake.operation", "webhook".into())
        .with_batches(schema, vec![batch])
        .await
        .map_err(|e| format!("merging into {SALESFORCE_HISTORY}: {e}"))?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_ids_are_the_same_for_the_same_change_only() {
        let ws = WorkspaceId::new("demo").unwrap();
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let a = history_id(&ws, "006A", "Closed Won", at);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("wh"));
        assert_eq!(a, history_id(&ws, "006A", "Closed Won", at));
        assert_ne!(a, history_id(&ws, "006A", "Closed Lost", at));
        assert_ne!(a, history_id(&ws, "006B", "Closed Won", at));
        let later = at + chrono::Duration::seconds(1);
        assert_ne!(a, history_id(&ws, "006A", "Closed Won", later));
    }

    #[test]
    fn values_that_do_not_fit_their_column_are_null() {
        let (a, lost) = cast_one(Some("70"), &DataType::Int64).unwrap();
        assert!(!lost && !a.is_null(0));
        let (a, lost) = cast_one(Some("soon"), &DataType::Float64).unwrap();
        assert!(lost && a.is_null(0));
        let (a, lost) = cast_one(Some("2025-01-31"), &DataType::Date32).unwrap();
        assert!(!lost && !a.is_null(0));
        let (a, _) = cast_one(Some("2025-01-31T09:30:00.000Z"), &timestamp_type()).unwrap();
        assert!(!a.is_null(0));
    }
}
