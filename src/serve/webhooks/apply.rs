//! Applying a workspace's batch of events, in five steps timed on the batch's one log line
//! (`webhook batch applied`: `land_ms`, `models_ms`, `simulate_ms`, `score_ms`, `alerts_ms`):
//!
//! 1. **land**: the changes are merged into the raw tables the connectors write (one merge
//!    commit per table), as the table below says;
//! 2. **models**: the staging models reading what landed are rebuilt for the workspace:
//!    `staging.deals` after deal changes, `staging.deal_stage_history` too after stage events
//!    (another property's change moves no transition; the history rows' copy of the deal's
//!    `source_data` catches up at the next batch run), `staging.subscriptions` /
//!    `staging.invoices` after Stripe objects;
//! 3. **simulate**: the changed deals are re-forecast into `marts.deal_forecasts`, with the
//!    batch's simulation settings ([`resimulate`]);
//! 4. **score**: the open deals are rescored (scoring reads the forecasts' `p_win`);
//! 5. **alerts**: the alerts the scoring raised for the first time are delivered through the
//!    pipeline's `[alerts]` routes, as the batch would.
//!
//! | change | lands in | merged on |
//! | --- | --- | --- |
//! | HubSpot deal property | `raw.hubspot_deals`, column = property name; a `dealstage` change also sets `hs_v2_date_entered_<new stage>` (and `hs_v2_date_exited_<old stage>`) to the event's time, where `staging.deal_stage_history` finds it | `hs_object_id` |
//! | Salesforce Opportunity field | `raw.salesforce_opportunity`, column = snake_case(field); a `StageName` change also adds a `raw.salesforce_opportunity_history` row ([`history`]) | `id` |
//! | Stripe event | `raw.stripe_webhook_events` | `id` |
//! | Stripe subscription / invoice event | also `raw.stripe_subscriptions` / `raw.stripe_invoices`, the object as the connector lands it, unless the landed row is newer ([`stripe`]) | `id` |
//!
//! A HubSpot `dealstage` change that does not carry `hs_is_closed` / `hs_is_closed_won` also sets
//! them from the stage's pipeline (HubSpot recomputes them, but a property webhook only sends
//! `dealstage`).
//!
//! A deal the raw table does not hold yet, or properties it has no column for, are `skipped`
//! with the reason (the next sync lands the whole record). A stage "change" to the stage the raw
//! row already has adds no history. Applying twice gives the same rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use super::events::{Change, Crm, change};
use super::history::{self, Transition};
use super::resimulate::{self, SimSettings};
use super::stripe;
use crate::alerts::AlertsConfig;
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use crate::project::Project;
use crate::serve::queue::{Apply, EventRecord, Outcome};
use crate::sql::models::{ModelDag, RunOptions, RunScope, run_selected};

/// The staging model rebuilt after deal changes land.
const DEALS_MODEL: &str = "staging.deals";
/// The staging model rebuilt after stage changes land (only then: a change of another
/// property leaves every transition as it was).
const HISTORY_MODEL: &str = "staging.deal_stage_history";
/// Where Stripe events land.
pub const STRIPE_EVENTS: &str = "raw.stripe_webhook_events";

/// One event's change of a deal's stage property.
#[derive(Debug, Clone)]
struct StageChange {
    stage: Option<String>,
    at: DateTime<Utc>,
    event: usize,
}

/// The deal changes of one raw row, merged in receipt order (a later value wins).
#[derive(Debug, Default)]
struct DealChanges {
    events: Vec<usize>,
    properties: BTreeMap<String, Option<String>>,
    occurred_at: Option<DateTime<Utc>>,
    /// The stage changes, in receipt order (each is a history row when it changes the stage).
    stages: Vec<StageChange>,
}

/// A deal whose raw row changed: its CRM and source id.
pub type ChangedDeal = (Crm, String);

/// Milliseconds of a batch's steps after landing, and what they did.
#[derive(Debug, Default)]
struct Refreshed {
    models_ms: u64,
    simulate_ms: u64,
    score_ms: u64,
    alerts_ms: u64,
    resimulated: usize,
    forecasts_removed: usize,
    new_alerts: usize,
    deliveries: usize,
}

/// Applies events to the lake of a project.
pub struct LakeApplier {
    lake: Lake,
    project: Arc<Project>,
    dag: ModelDag,
    alerts: HashMap<WorkspaceId, AlertsConfig>,
    simulation: HashMap<WorkspaceId, SimSettings>,
}

impl LakeApplier {
    pub fn new(
        lake: Lake,
        project: Arc<Project>,
        alerts: HashMap<WorkspaceId, AlertsConfig>,
    ) -> Result<Self, crate::sql::SqlError> {
        let dag = ModelDag::load(&project)?;
        let simulation: HashMap<WorkspaceId, SimSettings> = alerts
            .keys()
            .map(|ws| (ws.clone(), resimulate::settings(&project, ws)))
            .collect();
        for (ws, s) in &simulation {
            tracing::info!(
                workspace = %ws,
                runs = s.runs,
                seed = s.seed,
                months = s.months,
                from = %s.from,
                "webhook re-forecast settings"
            );
        }
        Ok(Self {
            lake,
            project,
            dag,
            alerts,
            simulation,
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
        let mut stripe_events = Vec::new();
        let mut stripe_objects = Vec::new();
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
                    let at = occurred_at.unwrap_or(e.received_at);
                    for (p, v) in &properties {
                        if column_of(crm, p) == stage_column(crm) {
                            d.stages.push(StageChange {
                                stage: v.clone(),
                                at,
                                event: i,
                            });
                        }
                    }
                    d.properties.extend(properties);
                    d.occurred_at = d.occurred_at.max(occurred_at);
                }
                c @ Change::Stripe { .. } => {
                    if let Some(o) = stripe::ObjectEvent::parse(i, &e.payload) {
                        stripe_objects.push(o);
                    }
                    stripe_events.push((i, c, e.payload.clone()));
                    outcomes[i] = Some(Outcome::Processed);
                }
                Change::Ignore(why) => outcomes[i] = Some(Outcome::Skipped(why)),
            }
        }
        if !stripe_events.is_empty() {
            land_stripe(&self.lake, workspace, &stripe_events).await?;
        }
        let mut models: BTreeSet<&'static str> = BTreeSet::new();
        let mut changed: Vec<ChangedDeal> = Vec::new();
        let mut stage_changes = 0;
        // Landed deals with a stage event, whether or not it changed the stage: a batch retried
        // after a failure finds its stage changes already in raw, and must still rebuild.
        let mut stage_events = 0;
        for (crm, changes) in &deals {
            let landed = land_deals(&self.lake, workspace, *crm, changes, events).await?;
            for (id, d) in changes {
                let outcome = match landed.verdicts.get(id) {
                    Some(None) => {
                        changed.push((*crm, id.clone()));
                        if !d.stages.is_empty() {
                            stage_events += 1;
                        }
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
            stage_changes += landed.transitions.len();
        }
        if !changed.is_empty() {
            models.insert(DEALS_MODEL);
        }
        if stage_events > 0 {
            models.insert(HISTORY_MODEL);
        }
        let mut stale = 0;
        if !stripe_objects.is_empty() {
            let applied = stripe::apply(&self.lake, workspace, &stripe_objects, events).await?;
            stale = applied.stale.len();
            for (i, why) in applied.stale {
                outcomes[i] = Some(Outcome::Skipped(why));
            }
            models.extend(applied.models);
        }
        let land_ms = started.elapsed().as_millis() as u64;
        let r = if models.is_empty() {
            Refreshed::default()
        } else {
            self.refresh(workspace, &models, &changed).await?
        };
        tracing::info!(
            workspace = %workspace,
            events = events.len(),
            land_ms,
            models_ms = r.models_ms,
            simulate_ms = r.simulate_ms,
            score_ms = r.score_ms,
            alerts_ms = r.alerts_ms,
            total_ms = started.elapsed().as_millis() as u64,
            deals = changed.len(),
            stage_changes,
            stripe_objects = stripe_objects.len() - stale,
            stripe_stale = stale,
            models = ?models,
            resimulated = r.resimulated,
            forecasts_removed = r.forecasts_removed,
            rescored = !changed.is_empty(),
            new_alerts = r.new_alerts,
            deliveries = r.deliveries,
            "webhook batch applied"
        );
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Skipped("nothing to apply".into())))
            .collect())
    }

    /// Rebuilds `models` for the workspace; after deal changes, re-forecasts the `changed`
    /// deals, rescores the open deals and delivers the new alerts.
    async fn refresh(
        &self,
        workspace: &WorkspaceId,
        models: &BTreeSet<&'static str>,
        changed: &[ChangedDeal],
    ) -> Result<Refreshed, String> {
        let mut r = Refreshed::default();
        let t = Instant::now();
        // The deal models are rebuilt for the changed deals only; the others (billing) whole.
        let (scoped, whole): (Vec<&str>, Vec<&str>) = models
            .iter()
            .partition(|m| changed_deal_models().contains_key(**m));
        if !scoped.is_empty() {
            let select: Vec<String> = scoped.iter().map(|m| m.to_string()).collect();
            let options = RunOptions {
                workspace: Some(workspace.clone()),
                select: select.clone(),
                concurrency: 2,
                scope: Some(Arc::new(deal_scope(workspace, changed))),
                ..RunOptions::default()
            };
            run_selected(&self.lake, &self.project, &self.dag, &options, &mut |_| {})
                .await
                .map_err(|e| {
                    format!(
                        "rebuilding {} for the changed deals: {e}",
                        select.join(", ")
                    )
                })?;
        }
        if !whole.is_empty() {
            let select: Vec<String> = whole.iter().map(|m| m.to_string()).collect();
            let options = RunOptions {
                workspace: Some(workspace.clone()),
                select: select.clone(),
                concurrency: 2,
                ..RunOptions::default()
            };
            run_selected(&self.lake, &self.project, &self.dag, &options, &mut |_| {})
                .await
                .map_err(|e| format!("rebuilding {}: {e}", select.join(", ")))?;
        }
        r.models_ms = t.elapsed().as_millis() as u64;
        if changed.is_empty() {
            return Ok(r);
        }
        let t = Instant::now();
        let settings = self
            .simulation
            .get(workspace)
            .cloned()
            .unwrap_or_else(|| resimulate::settings(&self.project, workspace));
        let sim = resimulate::resimulate(&self.lake, &self.project, workspace, &settings, changed)
            .await?;
        r.resimulated = sim.forecast;
        r.forecasts_removed = sim.removed;
        r.simulate_ms = t.elapsed().as_millis() as u64;
        let t = Instant::now();
        let report = crate::scoring::score_workspace(
            &self.lake,
            &crate::scoring::Schemas::from_project(&self.project),
            workspace,
            &crate::scoring::ScoreOptions::default(),
        )
        .await
        .map_err(|e| format!("rescoring: {e}"))?;
        r.score_ms = t.elapsed().as_millis() as u64;
        let t = Instant::now();
        let alerts = crate::alerts::scoring_alerts(workspace.as_str(), &report.new_alerts());
        let config = self.alerts.get(workspace).cloned().unwrap_or_default();
        let deliveries = crate::alerts::deliver_and_record(&self.lake, &config, &alerts).await;
        r.alerts_ms = t.elapsed().as_millis() as u64;
        r.new_alerts = alerts.len();
        r.deliveries = deliveries.len();
        Ok(r)
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

/// The rows of `name` that `sql` (over the table as `t`) selects, with the table's stored
/// schema; `None` when the table does not exist.
pub(super) async fn read_table(
    lake: &Lake,
    name: &str,
    sql: &str,
) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>, String> {
    let dataset: DatasetRef = name.parse().map_err(|e| format!("{name}: {e}"))?;
    let Some(table) = lake.try_load(&dataset).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| format!("{name}: {e}"))?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let schema = provider.schema();
    ctx.register_table("t", provider)
        .map_err(|e| format!("{name}: {e}"))?;
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| format!("reading {name}: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    Ok(Some((schema, batches)))
}

/// The text of row `r` of `column` (any type, cast), `None` for null.
pub(super) fn text_at(column: &ArrayRef, r: usize) -> Option<String> {
    if column.is_null(r) {
        return None;
    }
    let one = arrow::compute::cast(&column.slice(r, 1), &DataType::Utf8).ok()?;
    let one = one.as_any().downcast_ref::<StringArray>()?;
    (!one.is_null(0)).then(|| one.value(0).to_string())
}

/// The deal models a webhook batch rebuilds for its changed deals only, each with the column
/// naming a deal's rows.
fn changed_deal_models() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([(DEALS_MODEL, "id"), (HISTORY_MODEL, "deal_id")])
}

/// The inputs of the deal models narrowed to the changed deals: each raw table by its deal
/// key (Pipedrive, which sends no webhooks here, to nothing), the activities by staging deal
/// id. What `staging.deals` and `staging.deal_stage_history` compute for a deal depends on its
/// own rows of these (its stage history, its activities for the triggers) and on tables left
/// whole (accounts, users, seeds), so the narrowed run gives that deal's rows of a full run.
fn deal_scope(workspace: &WorkspaceId, changed: &[ChangedDeal]) -> RunScope {
    let ids_of = |crm: Crm| -> Vec<String> {
        changed
            .iter()
            .filter(|(c, _)| *c == crm)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let (hubspot, salesforce) = (ids_of(Crm::Hubspot), ids_of(Crm::Salesforce));
    let staging: Vec<String> = changed
        .iter()
        .map(|(crm, id)| {
            let source = match crm {
                Crm::Hubspot => "hubspot",
                Crm::Salesforce => "salesforce",
            };
            crate::sql::udf::record_id(&[workspace.as_str(), source, id]).to_string()
        })
        .collect();
    let input = |name: &str, column: &str, values: &[String]| {
        (
            name.parse::<DatasetRef>()
                .expect("the deal models' inputs are valid names"),
            (column.to_string(), values.to_vec()),
        )
    };
    RunScope {
        inputs: BTreeMap::from([
            input("raw.hubspot_deals", "hs_object_id", &hubspot),
            input("raw.hubspot_stage_snapshots", "deal_key", &hubspot),
            input("raw.salesforce_opportunity", "id", &salesforce),
            input(
                "raw.salesforce_opportunity_history",
                "opportunity_id",
                &salesforce,
            ),
            input("raw.salesforce_stage_snapshots", "deal_key", &salesforce),
            input("raw.pipedrive_deals", "id", &[]),
            input("raw.pipedrive_deal_stage_changes", "deal_id", &[]),
            input("staging.activities", "deal_id", &staging),
        ]),
        outputs: changed_deal_models()
            .into_iter()
            .map(|(m, c)| {
                (
                    m.parse::<DatasetRef>().expect("valid model names"),
                    c.to_string(),
                )
            })
            .collect(),
        values: staging,
    }
}

/// The raw table of a CRM's deals, its key column and its last-modified column.
fn raw_table(crm: Crm) -> (&'static str, &'static str, &'static str) {
    match crm {
        Crm::Hubspot => ("raw.hubspot_deals", "hs_object_id", "hs_lastmodifieddate"),
        Crm::Salesforce => ("raw.salesforce_opportunity", "id", "last_modified_date"),
    }
}

/// The raw column holding a CRM deal's stage.
fn stage_column(crm: Crm) -> &'static str {
    match crm {
        Crm::Hubspot => "dealstage",
        Crm::Salesforce => "stage_name",
    }
}

/// The stages a deal entered, in order: each change to another stage than the one before
/// (starting from the raw row's `current` stage).
fn transitions_of(
    current: Option<String>,
    stages: &[StageChange],
) -> Vec<(Option<String>, &StageChange)> {
    let mut before = current;
    let mut out = Vec::new();
    for s in stages {
        let Some(to) = s.stage.as_deref().filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        if before.as_deref() != Some(to) {
            out.push((before.clone(), s));
            before = Some(to.to_string());
        }
    }
    out
}

/// HubSpot's stage-date properties the transitions set: `hs_v2_date_entered_<stage id>` of
/// each stage entered and `hs_v2_date_exited_<stage id>` of each stage left, at the change's time
/// (HubSpot keeps the latest per stage), as RFC 3339.
fn hubspot_stage_dates(transitions: &[(Option<String>, &StageChange)]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (from, s) in transitions {
        let at = s.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Some(from) = from {
            out.insert(
                format!("hs_v2_date_exited_{}", from.to_ascii_lowercase()),
                at.clone(),
            );
        }
        if let Some(to) = &s.stage {
            out.insert(
                format!("hs_v2_date_entered_{}", to.to_ascii_lowercase()),
                at,
            );
        }
    }
    out
}

/// Whether each HubSpot deal stage id closes a deal, and wins it: from the pipelines the
/// connector lands (`raw.hubspot_deal_pipelines`: a closed stage with probability 1 wins), else
/// the default pipeline's `closedwon` / `closedlost`. HubSpot recomputes `hs_is_closed` and
/// `hs_is_closed_won` when `dealstage` changes, but a property-change webhook carries only
/// `dealstage`: without these the deal would stay open in staging after a move to a closed
/// stage. A stage id in neither leaves the flags as they are.
async fn hubspot_closed_flags(
    lake: &Lake,
    workspace: &WorkspaceId,
) -> Result<HashMap<String, (bool, bool)>, String> {
    let mut flags: HashMap<String, (bool, bool)> = HashMap::from([
        ("closedwon".to_string(), (true, true)),
        ("closedlost".to_string(), (true, false)),
    ]);
    let sql = format!(
        "SELECT CAST(stage_id AS VARCHAR) AS stage_id, CAST(is_closed AS BOOLEAN) AS is_closed, \
         CAST(probability AS DOUBLE) AS probability FROM t WHERE workspace_id = {}",
        quote(workspace.as_str())
    );
    let batches = match read_table(lake, PIPELINES_TABLE, &sql).await {
        Ok(Some((_, batches))) => batches,
        Ok(None) => return Ok(flags),
        // A pipelines table without these columns: the defaults.
        Err(e) => {
            tracing::warn!(error = %e, "reading HubSpot pipeline stages: using the default pipeline's");
            return Ok(flags);
        }
    };
    for b in &batches {
        let (Some(id), Some(closed), Some(p)) = (
            b.column_by_name("stage_id"),
            b.column_by_name("is_closed"),
            b.column_by_name("probability"),
        ) else {
            continue;
        };
        for r in 0..b.num_rows() {
            let (Some(id), Some(closed)) = (text_at(id, r), text_at(closed, r)) else {
                continue;
            };
            let closed = closed == "true";
            let won = closed && text_at(p, r).and_then(|v| v.parse::<f64>().ok()) >= Some(1.0);
            flags.insert(id, (closed, won));
        }
    }
    Ok(flags)
}

/// The HubSpot deal pipelines' stages, as the connector lands them.
const PIPELINES_TABLE: &str = "raw.hubspot_deal_pipelines";

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

/// What merging a CRM's deal changes did.
#[derive(Debug, Default)]
struct LandedDeals {
    /// Per deal id: `None` landed, `Some(why)` skipped; ids absent are not in the table.
    verdicts: HashMap<String, Option<String>>,
    /// The stage changes of the landed deals (each a stage the deal entered).
    transitions: Vec<Transition>,
}

/// Merges the changes into the CRM's raw deal rows. A Salesforce stage change's history row is
/// merged first: should the deal's merge fail, the retried batch finds the stage unchanged
/// and merges the same history row again (its id derives from the change), where the other
/// order would leave the stage changed without its history.
async fn land_deals(
    lake: &Lake,
    workspace: &WorkspaceId,
    crm: Crm,
    changes: &BTreeMap<String, DealChanges>,
    events: &[EventRecord],
) -> Result<LandedDeals, String> {
    let (name, key, modified) = raw_table(crm);
    let dataset: DatasetRef = name.parse().map_err(|e| format!("{name}: {e}"))?;
    let ids: Vec<String> = changes.keys().map(|k| quote(k)).collect();
    let sql = format!(
        "SELECT * FROM t WHERE workspace_id = {} AND CAST({key} AS VARCHAR) IN ({})",
        quote(workspace.as_str()),
        ids.join(", ")
    );
    let Some((_, batches)) = read_table(lake, name, &sql).await? else {
        return Ok(LandedDeals::default());
    };
    let Some(first) = batches.first() else {
        return Ok(LandedDeals::default());
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
    let closed_flags = match crm {
        Crm::Hubspot => hubspot_closed_flags(lake, workspace).await?,
        Crm::Salesforce => HashMap::new(),
    };
    let mut verdicts = HashMap::new();
    let mut transitions = Vec::new();
    let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); schema.fields().len()];
    let stage_at = rows.column_by_name(stage_column(crm));
    for r in 0..rows.num_rows() {
        let id = keys.value(r).to_string();
        let Some(d) = changes.get(&id) else { continue };
        if verdicts.contains_key(&id) {
            continue; // a duplicated raw row: the first is updated
        }
        let entered = transitions_of(stage_at.and_then(|c| text_at(c, r)), &d.stages);
        let stage_dates = match crm {
            Crm::Hubspot => {
                let mut derived = hubspot_stage_dates(&entered);
                let sent = |p: &str| d.properties.keys().any(|k| k.eq_ignore_ascii_case(p));
                if let Some((_, last)) = entered.last()
                    && let Some((closed, won)) =
                        last.stage.as_deref().and_then(|st| closed_flags.get(st))
                    && !sent("hs_is_closed")
                    && !sent("hs_is_closed_won")
                {
                    derived.insert("hs_is_closed".into(), closed.to_string());
                    derived.insert("hs_is_closed_won".into(), won.to_string());
                }
                derived
            }
            Crm::Salesforce => BTreeMap::new(),
        };
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
                _ => match stage_dates.get(field.name()) {
                    Some(at) => match cell(Some(at), field.data_type()) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            refused.push(format!("{}: {e}", field.name()));
                            None
                        }
                    },
                    None => None,
                },
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
        let values: HashMap<String, Option<String>> = schema
            .fields()
            .iter()
            .zip(&row)
            .map(|(f, a)| (f.name().clone(), text_at(a, 0)))
            .collect();
        for (from, s) in &entered {
            transitions.push(Transition {
                deal: id.clone(),
                from: from.clone(),
                to: s.stage.clone().unwrap_or_default(),
                at: s.at,
                event: s.event,
                values: values.clone(),
            });
        }
        for (c, a) in row.into_iter().enumerate() {
            columns[c].push(a);
        }
        verdicts.insert(id, None);
    }
    if crm == Crm::Salesforce {
        history::append_salesforce(lake, workspace, &transitions, events).await?;
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
            .with_batches(schema.clone(), vec![batch])
            .await
            .map_err(|e| format!("merging into {name}: {e}"))?;
    }
    if crm == Crm::Hubspot {
        // HubSpot's history is the stage-date columns just merged: only the ones that exist.
        transitions.retain(|t| {
            schema
                .fields()
                .iter()
                .any(|f| *f.name() == format!("hs_v2_date_entered_{}", t.to.to_ascii_lowercase()))
        });
    }
    Ok(LandedDeals {
        verdicts,
        transitions,
    })
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

    /// Lands text columns (`""` = null) as `dataset` of workspace `w`.
    async fn land_text(lake: &Lake, dataset: &str, columns: &[&str], rows: &[&[&str]]) {
        use arrow::datatypes::{Field, Schema};
        let mut fields = vec![Field::new("workspace_id", DataType::Utf8, false)];
        fields.extend(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)));
        let schema = Arc::new(Schema::new(fields));
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["w"; rows.len()]))];
        for c in 0..columns.len() {
            arrays.push(Arc::new(StringArray::from_iter(
                rows.iter().map(|r| Some(r[c]).filter(|v| !v.is_empty())),
            )));
        }
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        lake.write(dataset.parse().unwrap())
            .with_mode(WriteMode::Append)
            .with_batches(schema, vec![batch])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_hubspot_move_to_a_closed_stage_closes_the_deal_as_its_pipeline_says() {
        let lake = Lake::open(&format!("memory://apply-{}/", uuid::Uuid::new_v4()))
            .await
            .unwrap();
        let ws = WorkspaceId::new("w").unwrap();
        land_text(
            &lake,
            "raw.hubspot_deals",
            &[
                "hs_object_id",
                "dealstage",
                "hs_is_closed",
                "hs_is_closed_won",
            ],
            &[
                &["1", "appointmentscheduled", "false", "false"],
                &["2", "appointmentscheduled", "false", "false"],
                &["3", "appointmentscheduled", "false", "false"],
                &["4", "appointmentscheduled", "false", "false"],
            ],
        )
        .await;
        // A custom pipeline: its "Signed" stage wins, its "Churned" stage loses.
        land_text(
            &lake,
            PIPELINES_TABLE,
            &["stage_id", "is_closed", "probability"],
            &[
                &["777", "true", "1.0"],
                &["778", "true", "0.0"],
                &["779", "false", "0.5"],
            ],
        )
        .await;
        let change = |stage: &str, extra: &[(&str, &str)]| {
            let mut properties: BTreeMap<String, Option<String>> =
                BTreeMap::from([("dealstage".to_string(), Some(stage.to_string()))]);
            for (k, v) in extra {
                properties.insert(k.to_string(), Some(v.to_string()));
            }
            DealChanges {
                events: vec![0],
                properties,
                occurred_at: DateTime::from_timestamp(1_700_000_000, 0),
                stages: vec![StageChange {
                    stage: Some(stage.to_string()),
                    at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                    event: 0,
                }],
            }
        };
        let changes = BTreeMap::from([
            ("1".to_string(), change("777", &[])),
            ("2".to_string(), change("778", &[])),
            ("3".to_string(), change("closedwon", &[])),
            // The event says itself: it wins over the pipeline.
            (
                "4".to_string(),
                change("777", &[("hs_is_closed_won", "false")]),
            ),
        ]);
        let landed = land_deals(&lake, &ws, Crm::Hubspot, &changes, &[])
            .await
            .unwrap();
        assert!(landed.verdicts.values().all(Option::is_none), "{landed:?}");
        let (_, batches) = read_table(
            &lake,
            "raw.hubspot_deals",
            "SELECT hs_object_id, dealstage, hs_is_closed, hs_is_closed_won FROM t \
             ORDER BY hs_object_id",
        )
        .await
        .unwrap()
        .unwrap();
        let b = &batches[0];
        let rows: Vec<String> = (0..b.num_rows())
            .map(|r| {
                (0..4)
                    .map(|c| text_at(b.column(c), r).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(
            rows,
            [
                "1,777,true,true",
                "2,778,true,false",
                "3,closedwon,true,true",
                "4,777,false,false",
            ]
        );
        // A move back to an open stage of the pipeline reopens the deal.
        let reopened = BTreeMap::from([("1".to_string(), change("779", &[]))]);
        land_deals(&lake, &ws, Crm::Hubspot, &reopened, &[])
            .await
            .unwrap();
        let (_, batches) = read_table(
            &lake,
            "raw.hubspot_deals",
            "SELECT hs_is_closed FROM t WHERE hs_object_id = '1'",
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(text_at(batches[0].column(0), 0).as_deref(), Some("false"));
    }

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

    fn stage(s: Option<&str>, secs: i64, event: usize) -> StageChange {
        StageChange {
            stage: s.map(str::to_string),
            at: DateTime::from_timestamp(secs, 0).unwrap(),
            event,
        }
    }

    #[test]
    fn only_changes_to_another_stage_are_transitions() {
        let changes = [
            stage(Some("qualifiedtobuy"), 10, 0), // the stage it is in: nothing
            stage(None, 11, 1),                   // cleared: not a stage entered
            stage(Some("contractsent"), 12, 2),
            stage(Some("contractsent"), 13, 3), // sent again: nothing
            stage(Some("closedwon"), 14, 4),
        ];
        let t = transitions_of(Some("qualifiedtobuy".into()), &changes);
        let seen: Vec<(Option<&str>, usize)> = t
            .iter()
            .map(|(from, s)| (from.as_deref(), s.event))
            .collect();
        assert_eq!(
            seen,
            vec![(Some("qualifiedtobuy"), 2), (Some("contractsent"), 4)]
        );
        let dates = hubspot_stage_dates(&t);
        assert_eq!(
            dates.keys().map(String::as_str).collect::<Vec<_>>(),
            vec![
                "hs_v2_date_entered_closedwon",
                "hs_v2_date_entered_contractsent",
                "hs_v2_date_exited_contractsent",
                "hs_v2_date_exited_qualifiedtobuy",
            ]
        );
        assert_eq!(
            dates["hs_v2_date_entered_contractsent"],
            "1970-01-01T00:00:12.000Z"
        );
        assert_eq!(
            dates["hs_v2_date_exited_contractsent"],
            "1970-01-01T00:00:14.000Z"
        );
        // A deal without a stage yet enters its first one.
        let first = transitions_of(None, &changes[..1]);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, None);
        assert_eq!(
            stage_column(Crm::Salesforce),
            column_of(Crm::Salesforce, "StageName")
        );
    }
}
