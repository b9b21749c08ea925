//! Applying a workspace's batch of events: the changes land in the raw tables the connectors
//! write (one merge commit per table), the workspace's `staging.deals` is rebuilt, the open
//! deals are rescored, and the alerts the scoring raised for the first time are delivered
//! through the pipeline's `[alerts]` routes, as the batch would.
//!
//! | change | lands in | merged on |
//! | --- | --- | --- |
//! | HubSpot deal property | `raw.hubspot_deals`, column = property name | `hs_object_id` |
//! | Salesforce Opportunity field | `raw.salesforce_opportunity`, column = snake_case(field) | `id` |
//! | Stripe event | `raw.stripe_webhook_events` | `id` |
//!
//! A deal the raw table does not hold yet, or properties it has no column for, are `skipped`
//! with the reason (the next sync lands the whole record). Applying twice gives the same rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use super::events::{Change, Crm, change};
use crate::alerts::AlertsConfig;
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use crate::project::Project;
use crate::serve::queue::{Apply, EventRecord, Outcome};
use crate::sql::models::{ModelDag, RunOptions, run_selected};

/// The staging models rebuilt after deal changes land.
const STAGING_MODELS: &str = "staging.deals";
/// Where Stripe events land.
pub const STRIPE_EVENTS: &str = "raw.stripe_webhook_events";

/// The deal changes of one raw row, merged in receipt order (a later value wins).
#[derive(Debug, Default)]
struct DealChanges {
    events: Vec<usize>,
    properties: BTreeMap<String, Option<String>>,
    occurred_at: Option<DateTime<Utc>>,
}

/// Applies events to the lake of a project.
pub struct LakeApplier {
    lake: Lake,
    project: Arc<Project>,
    dag: ModelDag,
    alerts: HashMap<WorkspaceId, AlertsConfig>,
}

impl LakeApplier {
    pub fn new(
        lake: Lake,
        project: Arc<Project>,
        alerts: HashMap<WorkspaceId, AlertsConfig>,
    ) -> Result<Self, crate::sql::SqlError> {
        let dag = ModelDag::load(&project)?;
        Ok(Self {
            lake,
            project,
            dag,
            alerts,
        })
    }

    async fn run(
        &self,
        workspace: &WorkspaceId,
        events: &[EventRecord],
    ) -> Result<Vec<Outcome>, String> {
        let started = Instant::now();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut deals: BTreeMap<Crm, BTreeMap<String, DealChanges>> = BTreeMap::new();
        let mut stripe = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match change(&e.source, &e.payload) {
                Change::Deal {
                    crm,
                    id,
                    properties,
                    occurred_at,
                } => {
                    let d = deals.entry(crm).or_default().entry(id).or_default();
                    d.events.push(i);
                    d.properties.extend(properties);
                    d.occurred_at = d.occurred_at.max(occurred_at);
                }
                Change::Stripe { .. } => {
                    stripe.push((i, change(&e.source, &e.payload), e.payload.clone()));
                    outcomes[i] = Some(Outcome::Processed);
                }
                Change::Ignore(why) => outcomes[i] = Some(Outcome::Skipped(why)),
            }
        }
        if !stripe.is_empty() {
            land_stripe(&self.lake, workspace, &stripe).await?;
        }
        let mut landed_any = false;
        for (crm, changes) in &deals {
            let verdicts = land_deals(&self.lake, workspace, *crm, changes).await?;
            for (id, d) in changes {
                let outcome = match verdicts.get(id) {
                    Some(None) => {
                        landed_any = true;
                        Outcome::Processed
                    }
                    Some(Some(why)) => Outcome::Skipped(why.clone()),
                    None => Outcome::Skipped(format!(
                        "deal {id} is not in {} yet: the next sync lands it",
                        raw_table(*crm).0
                    )),
                };
                for &i in &d.events {
                    outcomes[i] = Some(outcome.clone());
                }
            }
        }
        let landed = started.elapsed();
        if landed_any {
            self.refresh(workspace).await?;
        }
        tracing::info!(
            workspace = %workspace,
            events = events.len(),
            land_ms = landed.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            rescored = landed_any,
            "webhook batch applied"
        );
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Skipped("nothing to apply".into())))
            .collect())
    }

    /// Rebuilds the workspace's staging deals, rescores its open deals and delivers the new
    /// alerts.
    async fn refresh(&self, workspace: &WorkspaceId) -> Result<(), String> {
        let t = Instant::now();
        let options = RunOptions {
            workspace: Some(workspace.clone()),
            select: vec![STAGING_MODELS.to_string()],
            concurrency: 1,
            ..RunOptions::default()
        };
        run_selected(&self.lake, &self.project, &self.dag, &options, &mut |_| {})
            .await
            .map_err(|e| format!("rebuilding {STAGING_MODELS}: {e}"))?;
        let models_ms = t.elapsed().as_millis() as u64;
        let t = Instant::now();
        let report = crate::scoring::score_workspace(
            &self.lake,
            &crate::scoring::Schemas::from_project(&self.project),
            workspace,
            &crate::scoring::ScoreOptions::default(),
        )
        .await
        .map_err(|e| format!("rescoring: {e}"))?;
        let score_ms = t.elapsed().as_millis() as u64;
        let alerts = crate::alerts::scoring_alerts(workspace.as_str(), &report.new_alerts());
        let config = self.alerts.get(workspace).cloned().unwrap_or_default();
        let deliveries = crate::alerts::deliver_and_record(&self.lake, &config, &alerts).await;
        tracing::info!(
            workspace = %workspace,
            models_ms,
            score_ms,
            new_alerts = alerts.len(),
            deliveries = deliveries.len(),
            "webhook rescoring done"
        );
        Ok(())
    }
}

impl Apply for LakeApplier {
    fn apply<'a>(
        &'a self,
        workspace: &'a WorkspaceId,
        events: &'a [EventRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, String>> {
        Box::pin(self.run(workspace, events))
    }
}

/// The raw table of a CRM's deals, its key column and its last-modified column.
fn raw_table(crm: Crm) -> (&'static str, &'static str, &'static str) {
    match crm {
        Crm::Hubspot => ("raw.hubspot_deals", "hs_object_id", "hs_lastmodifieddate"),
        Crm::Salesforce => ("raw.salesforce_opportunity", "id", "last_modified_date"),
    }
}

fn column_of(crm: Crm, property: &str) -> String {
    match crm {
        Crm::Hubspot => property.to_ascii_lowercase(),
        Crm::Salesforce => crate::sources::naming::snake_case(property),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `value` as a one-row array of `to`: epoch milliseconds (as HubSpot sends dates) for
/// timestamps, else Arrow's cast from text.
fn cell(value: Option<&str>, to: &DataType) -> Result<ArrayRef, String> {
    if let (DataType::Timestamp(..), Some(v)) = (to, value)
        && let Ok(ms) = v.trim().parse::<i64>()
    {
        let a = TimestampMicrosecondArray::from(vec![ms.saturating_mul(1000)]).with_timezone("UTC");
        return arrow::compute::cast(&a, to).map_err(|e| e.to_string());
    }
    let text = StringArray::from(vec![value]);
    let out = arrow::compute::cast(&text, to).map_err(|e| e.to_string())?;
    if value.is_some() && out.is_null(0) {
        return Err(format!("`{}` is not a {to}", value.unwrap_or_default()));
    }
    Ok(out)
}

/// Merges the changes into the CRM's raw deal rows. Per deal id: `None` landed, `Some(why)`
/// skipped; ids absent from the answer are not in the table.
async fn land_deals(
    lake: &Lake,
    workspace: &WorkspaceId,
    crm: Crm,
    changes: &BTreeMap<String, DealChanges>,
) -> Result<HashMap<String, Option<String>>, String> {
    let (name, key, modified) = raw_table(crm);
    let dataset: DatasetRef = name.parse().map_err(|e| format!("{name}: {e}"))?;
    let Some(table) = lake.try_load(&dataset).await.map_err(|e| e.to_string())? else {
        return Ok(HashMap::new());
    };
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| format!("{name}: {e}"))?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    ctx.register_table("t", provider)
        .map_err(|e| format!("{name}: {e}"))?;
    let ids: Vec<String> = changes.keys().map(|k| quote(k)).collect();
    let sql = format!(
        "SELECT * FROM t WHERE workspace_id = {} AND CAST({key} AS VARCHAR) IN ({})",
        quote(workspace.as_str()),
        ids.join(", ")
    );
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| format!("reading {name}: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    let Some(first) = batches.first() else {
        return Ok(HashMap::new());
    };
    let schema = first.schema();
    let rows = arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
    let keys = arrow::compute::cast(
        rows.column_by_name(key)
            .ok_or_else(|| format!("{name} has no {key}"))?,
        &DataType::Utf8,
    )
    .map_err(|e| e.to_string())?;
    let keys = keys
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("keys are not text")?;
    let mut verdicts = HashMap::new();
    let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); schema.fields().len()];
    for r in 0..rows.num_rows() {
        let id = keys.value(r).to_string();
        let Some(d) = changes.get(&id) else { continue };
        if verdicts.contains_key(&id) {
            continue; // a duplicated raw row: the first is updated
        }
        let mut applied = 0;
        let mut refused = Vec::new();
        let mut row: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (c, field) in schema.fields().iter().enumerate() {
            let wanted = d
                .properties
                .iter()
                .find(|(p, _)| column_of(crm, p) == *field.name())
                .map(|(_, v)| v.as_deref());
            let new = match wanted {
                Some(v) if field.name() != key && field.name() != "workspace_id" => {
                    match cell(v, field.data_type()) {
                        Ok(a) => {
                            applied += 1;
                            Some(a)
                        }
                        Err(e) => {
                            refused.push(format!("{}: {e}", field.name()));
                            None
                        }
                    }
                }
                _ if field.name() == modified => d
                    .occurred_at
                    .map(|t| t.to_rfc3339())
                    .and_then(|t| cell(Some(&t), field.data_type()).ok()),
                _ => None,
            };
            row.push(new.unwrap_or_else(|| rows.column(c).slice(r, 1)));
        }
        let unknown: Vec<&str> = d
            .properties
            .keys()
            .filter(|p| {
                !schema
                    .fields()
                    .iter()
                    .any(|f| *f.name() == column_of(crm, p))
            })
            .map(String::as_str)
            .collect();
        if applied == 0 {
            let mut why = Vec::new();
            if !unknown.is_empty() {
                why.push(format!("{name} has no column for {}", unknown.join(", ")));
            }
            why.extend(refused);
            verdicts.insert(id, Some(why.join("; ")));
            continue;
        }
        if !unknown.is_empty() || !refused.is_empty() {
            tracing::warn!(deal = %id, unknown = ?unknown, refused = ?refused, "webhook properties not landed");
        }
        for (c, a) in row.into_iter().enumerate() {
            columns[c].push(a);
        }
        verdicts.insert(id, None);
    }
    if columns.first().is_some_and(|c| !c.is_empty()) {
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|parts| {
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                arrow::compute::concat(&refs)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
        lake.write(dataset)
            .with_mode(WriteMode::Merge)
            .with_merge_key(vec!["workspace_id".into(), key.into()])
            .with_commit_metadata("revlake.operation", "webhook".into())
            .with_batches(schema, vec![batch])
            .await
            .map_err(|e| format!("merging into {name}: {e}"))?;
    }
    Ok(verdicts)
}

/// Lands Stripe events (merged on their id).
async fn land_stripe(
    lake: &Lake,
    workspace: &WorkspaceId,
    events: &[(usize, Change, String)],
) -> Result<(), String> {
    use arrow::datatypes::{Field, Schema};
    let mut ids = Vec::new();
    let mut kinds = Vec::new();
    let mut created = Vec::new();
    let mut object_ids = Vec::new();
    let mut object_types = Vec::new();
    let mut data = Vec::new();
    for (_, c, payload) in events {
        if let Change::Stripe {
            id,
            kind,
            created: at,
            object_id,
            object_type,
        } = c
        {
            ids.push(id.clone());
            kinds.push(kind.clone());
            created.push(at.map(|t| t.timestamp_micros()));
            object_ids.push(object_id.clone());
            object_types.push(object_type.clone());
            data.push(payload.clone());
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, true),
        Field::new("created", crate::sources::records::timestamp_type(), true),
        Field::new("object_id", DataType::Utf8, true),
        Field::new("object_type", DataType::Utf8, true),
        Field::new("source_data", DataType::Utf8, true),
    ]));
    let n = ids.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![workspace.as_str(); n])),
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(kinds)),
            Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC")),
            Arc::new(StringArray::from(object_ids)),
            Arc::new(StringArray::from(object_types)),
            Arc::new(StringArray::from(data)),
        ],
    )
    .map_err(|e| e.to_string())?;
    let dataset: DatasetRef = STRIPE_EVENTS.parse().map_err(|e| format!("{e}"))?;
    lake.write(dataset)
        .with_mode(WriteMode::Merge)
        .with_merge_key(vec!["workspace_id".into(), "id".into()])
        .with_batches(schema, vec![batch])
        .await
        .map_err(|e| format!("merging into {STRIPE_EVENTS}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cast_text_and_epoch_milliseconds() {
        let ts = crate::sources::records::timestamp_type();
        let a = cell(Some("1700000000000"), &ts).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.value(0), 1_700_000_000_000_000);
        assert!(cell(Some("2024-01-02T03:04:05Z"), &ts).is_ok());
        assert!(cell(Some("soon"), &DataType::Float64).is_err());
        assert!(cell(None, &DataType::Float64).unwrap().is_null(0));
        assert_eq!(column_of(Crm::Salesforce, "StageName"), "stage_name");
        assert_eq!(column_of(Crm::Hubspot, "dealstage"), "dealstage");
    }
}
