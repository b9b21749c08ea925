//! Stripe subscription and invoice events applied to the tables the Stripe connector lands.
//!
//! | event | object lands in | staging model rebuilt |
//! | --- | --- | --- |
//! | `customer.subscription.*` (created, updated, deleted, paused, ...) | `raw.stripe_subscriptions` | `staging.subscriptions` |
//! | `invoice.*` (created, finalized, paid, voided, deleted, ...) | `raw.stripe_invoices` (`invoice.deleted`: a tombstone, `_deleted`) | `staging.invoices` |
//!
//! The event's `data.object` is landed as the connector lands a record of that stream
//! ([`crate::sources::stripe::object_batch`]: the same column names, types and `source_data`),
//! merged on (workspace_id, id), with `_sync_id` = `webhook:<event id>` and `_synced_at` = the
//! event's `created`: the time the object's state is as of.
//!
//! Stripe does not deliver events in order, so an event changes the row only if it is not older
//! than the state landed: its `created` after the row's `_synced_at` (a sync reads the state as
//! of its own time), or in the same second with a status at least as far along the object's
//! life (a subscription: incomplete → trialing / active / past_due / unpaid / paused → canceled /
//! incomplete_expired; an invoice: draft → open → uncollectible → paid / void → deleted). An
//! older event is `skipped` with the reason; it still lands in `raw.stripe_webhook_events`.

use std::collections::{BTreeSet, HashMap};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::apply::{read_table, text_at};
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use crate::serve::queue::EventRecord;
use crate::sources::sync::{add_sync_columns, unify};

/// The Stripe objects whose events are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Subscription,
    Invoice,
}

impl Kind {
    /// The event type prefix and the `data.object.object` of this kind.
    fn of(event_type: &str, object: &str) -> Option<Kind> {
        match object {
            "subscription" if event_type.starts_with("customer.subscription.") => {
                Some(Kind::Subscription)
            }
            "invoice" if event_type.starts_with("invoice.") => Some(Kind::Invoice),
            _ => None,
        }
    }

    /// The raw table the connector lands the object's stream in.
    pub fn table(self) -> &'static str {
        match self {
            Kind::Subscription => "raw.stripe_subscriptions",
            Kind::Invoice => "raw.stripe_invoices",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Subscription => "subscription",
            Kind::Invoice => "invoice",
        }
    }

    /// The staging model reading the table.
    pub fn model(self) -> &'static str {
        match self {
            Kind::Subscription => "staging.subscriptions",
            Kind::Invoice => "staging.invoices",
        }
    }

    /// How far along its life a status is (later states are not undone by an event of the same
    /// second).
    fn rank(self, status: Option<&str>, deleted: bool) -> u8 {
        if deleted {
            return 9;
        }
        match (self, status.unwrap_or("")) {
            (Kind::Subscription, "incomplete") => 0,
            (Kind::Subscription, "canceled" | "incomplete_expired") => 2,
            (Kind::Subscription, _) => 1,
            (Kind::Invoice, "draft") => 0,
            (Kind::Invoice, "open") => 1,
            (Kind::Invoice, "uncollectible") => 2,
            (Kind::Invoice, "paid" | "void") => 3,
            (Kind::Invoice, _) => 1,
        }
    }
}

/// A Stripe event carrying a subscription or an invoice.
#[derive(Debug, Clone)]
pub struct ObjectEvent {
    /// The event's index in its batch.
    pub index: usize,
    pub kind: Kind,
    pub event_type: String,
    pub object_id: String,
    pub created: Option<DateTime<Utc>>,
    pub object: Value,
    /// `invoice.deleted`: the object lands as a tombstone.
    pub deleted: bool,
}

impl ObjectEvent {
    /// The object of a stored Stripe event, if it is one this module applies (an object
    /// without an id, like `invoice.upcoming`'s, is not).
    pub fn parse(index: usize, payload: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(payload).ok()?;
        let event_type = v.get("type")?.as_str()?.to_string();
        let object = v.pointer("/data/object")?.clone();
        let kind = Kind::of(&event_type, object.get("object")?.as_str()?)?;
        let object_id = object.get("id")?.as_str()?.to_string();
        let created = v
            .get("created")
            .and_then(Value::as_i64)
            .and_then(|s| DateTime::from_timestamp(s, 0));
        Some(ObjectEvent {
            index,
            kind,
            deleted: event_type == "invoice.deleted",
            event_type,
            object_id,
            created,
            object,
        })
    }

    fn state(&self) -> State {
        State {
            at: self.created,
            rank: self.kind.rank(
                self.object.get("status").and_then(Value::as_str),
                self.deleted,
            ),
        }
    }
}

/// The state of an object: as of when, how far along.
#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    at: Option<DateTime<Utc>>,
    rank: u8,
}

impl State {
    /// Whether `self` may replace `landed`.
    fn supersedes(&self, landed: &State) -> bool {
        self.at > landed.at || (self.at == landed.at && self.rank >= landed.rank)
    }
}

/// What applying the objects did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Events older than the landed state: (index, why).
    pub stale: Vec<(usize, String)>,
    /// The staging models to rebuild.
    pub models: BTreeSet<&'static str>,
    /// Objects merged.
    pub merged: usize,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The landed state of `ids` in `kind`'s table.
async fn landed_states(
    lake: &Lake,
    workspace: &WorkspaceId,
    kind: Kind,
    ids: &BTreeSet<&str>,
) -> Result<(Option<arrow::datatypes::SchemaRef>, HashMap<String, State>), String> {
    let name = kind.table();
    let sql = format!(
        "SELECT * FROM t WHERE workspace_id = {} AND CAST(id AS VARCHAR) IN ({})",
        quote(workspace.as_str()),
        ids.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", ")
    );
    let Some((_, batches)) = read_table(lake, name, &sql).await? else {
        return Ok((None, HashMap::new()));
    };
    let dataset: DatasetRef = name.parse().map_err(|e| format!("{name}: {e}"))?;
    let schema = lake
        .arrow_schema(&dataset)
        .await
        .map_err(|e| e.to_string())?;
    let mut states = HashMap::new();
    for b in &batches {
        let column = |n: &str| b.column_by_name(n);
        let Some(id) = column("id") else {
            return Err(format!("{name} has no id column"));
        };
        for r in 0..b.num_rows() {
            let Some(id) = text_at(id, r) else { continue };
            let at = column("_synced_at")
                .and_then(|c| text_at(c, r))
                .and_then(|t| crate::sources::records::parse_timestamp(&t));
            let status = column("status").and_then(|c| text_at(c, r));
            let deleted = column("_deleted")
                .and_then(|c| text_at(c, r))
                .is_some_and(|t| t == "true");
            states.insert(
                id,
                State {
                    at,
                    rank: kind.rank(status.as_deref(), deleted),
                },
            );
        }
    }
    Ok((schema, states))
}

/// A one-row column of `value` repeated for `batch`'s rows, added under `name`.
fn with_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> Result<RecordBatch, String> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(name, array.data_type().clone(), false));
    let mut columns = batch.columns().to_vec();
    columns.push(array);
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .map_err(|e| e.to_string())
}

/// The row of one winning event: the object as the connector lands it, with the landing
/// columns (and, in a table landed from files, the file-lineage columns).
fn object_row(
    workspace: &WorkspaceId,
    ev: &ObjectEvent,
    record: &EventRecord,
    known: Option<&arrow::datatypes::SchemaRef>,
) -> Result<RecordBatch, String> {
    let batch = crate::sources::stripe::object_batch(&ev.object, ev.deleted)?;
    let at = ev.created.unwrap_or(record.received_at);
    let sync_id = format!("webhook:{}", record.event_id);
    let mut batch = add_sync_columns(&batch, workspace, &sync_id, at.timestamp_micros())
        .map_err(|e| e.to_string())?;
    let has = |n: &str| known.is_some_and(|s| s.column_with_name(n).is_some());
    if has("_source_file") && batch.column_by_name("_source_file").is_none() {
        batch = with_column(
            &batch,
            "_source_file",
            std::sync::Arc::new(StringArray::from(vec![sync_id.as_str()])),
        )?;
    }
    if has("_source_record") && batch.column_by_name("_source_record").is_none() {
        batch = with_column(
            &batch,
            "_source_record",
            std::sync::Arc::new(Int64Array::from(vec![record.seq])),
        )?;
    }
    Ok(batch)
}

/// Merges the objects of `objects` that are not older than the landed rows into their tables.
pub async fn apply(
    lake: &Lake,
    workspace: &WorkspaceId,
    objects: &[ObjectEvent],
    events: &[EventRecord],
) -> Result<Applied, String> {
    let mut applied = Applied::default();
    for kind in [Kind::Subscription, Kind::Invoice] {
        let mine: Vec<&ObjectEvent> = objects.iter().filter(|o| o.kind == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let ids: BTreeSet<&str> = mine.iter().map(|o| o.object_id.as_str()).collect();
        let (known, mut states) = landed_states(lake, workspace, kind, &ids).await?;
        // In receipt order, each object's state moves forward only.
        let mut winners: HashMap<&str, &ObjectEvent> = HashMap::new();
        for ev in &mine {
            let state = ev.state();
            match states.get(&ev.object_id) {
                Some(landed) if !state.supersedes(landed) => {
                    applied.stale.push((
                        ev.index,
                        format!(
                            "{} of {} {} is older than the state landed in {} (as of {}): not applied",
                            ev.event_type,
                            kind.noun(),
                            ev.object_id,
                            kind.table(),
                            landed.at.map_or("an unknown time".into(), |t| t.to_rfc3339()),
                        ),
                    ));
                }
                _ => {
                    states.insert(ev.object_id.clone(), state);
                    winners.insert(&ev.object_id, ev);
                }
            }
        }
        if winners.is_empty() {
            continue;
        }
        let mut winners: Vec<&ObjectEvent> = winners.into_values().collect();
        winners.sort_by_key(|e| e.index);
        let rows = winners
            .iter()
            .map(|ev| object_row(workspace, ev, &events[ev.index], known.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (schema, batches, nulled) =
            unify(known.as_ref(), &rows).map_err(|e| format!("{}: {e}", kind.table()))?;
        if nulled > 0 {
            tracing::warn!(
                table = kind.table(),
                values = nulled,
                "Stripe webhook values that do not fit their column landed as null (kept in source_data)"
            );
        }
        let dataset: DatasetRef = kind
            .table()
            .parse()
            .map_err(|e| format!("{}: {e}", kind.table()))?;
        lake.write(dataset)
            .with_mode(WriteMode::Merge)
            .with_merge_key(vec!["workspace_id".into(), "id".into()])
            .with_commit_metadata("revlake.operation", "webhook".into())
            .with_batches(schema, batches)
            .await
            .map_err(|e| format!("merging into {}: {e}", kind.table()))?;
        applied.merged += winners.len();
        applied.models.insert(kind.model());
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, id: &str, created: i64, status: &str) -> String {
        let object = if kind.starts_with("invoice") {
            "invoice"
        } else {
            "subscription"
        };
        serde_json::json!({"id": format!("evt_{created}"), "type": kind, "created": created,
                           "data": {"object": {"id": id, "object": object, "status": status}}})
        .to_string()
    }

    #[test]
    fn only_subscription_and_invoice_objects_with_an_id_are_applied() {
        let e = ObjectEvent::parse(
            3,
            &event("customer.subscription.updated", "sub_1", 100, "active"),
        )
        .unwrap();
        assert_eq!(
            (e.index, e.kind, e.object_id.as_str()),
            (3, Kind::Subscription, "sub_1")
        );
        assert_eq!(e.created, DateTime::from_timestamp(100, 0));
        let d = ObjectEvent::parse(0, &event("invoice.deleted", "in_1", 100, "draft")).unwrap();
        assert!(d.deleted && d.kind == Kind::Invoice);
        assert!(ObjectEvent::parse(0, &event("customer.updated", "cus_1", 1, "")).is_none());
        let upcoming = r#"{"id":"evt_u","type":"invoice.upcoming","created":1,"data":{"object":{"object":"invoice","status":"draft"}}}"#;
        assert!(ObjectEvent::parse(0, upcoming).is_none());
        assert!(ObjectEvent::parse(0, "not json").is_none());
    }

    #[test]
    fn older_events_and_earlier_states_of_the_same_second_do_not_supersede() {
        let at = |s| DateTime::from_timestamp(s, 0);
        let landed = State {
            at: at(100),
            rank: Kind::Subscription.rank(Some("active"), false),
        };
        let older = State {
            at: at(99),
            rank: 2,
        };
        assert!(!older.supersedes(&landed));
        let newer = State {
            at: at(101),
            rank: 0,
        };
        assert!(newer.supersedes(&landed));
        let canceled = State {
            at: at(100),
            rank: Kind::Subscription.rank(Some("canceled"), false),
        };
        assert!(canceled.supersedes(&landed));
        assert!(
            !landed.supersedes(&canceled),
            "a same-second event does not undo a cancel"
        );
        let paid = Kind::Invoice.rank(Some("paid"), false);
        assert!(paid > Kind::Invoice.rank(Some("open"), false));
        assert!(Kind::Invoice.rank(Some("paid"), true) > paid);
        // Without a time, an event never replaces a landed row.
        assert!(!State { at: None, rank: 9 }.supersedes(&landed));
    }
}
