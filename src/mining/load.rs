//! Reading one workspace's mining input from the lake: the columns mining needs, streamed in
//! Arrow batches and encoded to dense codes as they arrive (CPU work off the async runtime).

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};

use super::config::{Factor, MiningConfig};
use super::encode::{DealIndex, Dict, NONE16, NONE32, Prepared, StrCol};
use super::error::{MiningError, Result};
use super::log::{Activities, Deals, Transitions, WorkspaceLog};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use rayon::prelude::*;

use crate::lake::{AsOf, DatasetRef, Lake, LakeError, WorkspaceId};

/// The datasets mining reads.
const INPUTS: [&str; 4] = [
    "staging.deals",
    "staging.deal_contacts",
    "staging.deal_stage_history",
    "staging.activities",
];

/// A DataFusion session over just the datasets mining reads (opening only their Delta logs,
/// not the whole lake's), at their latest versions or as of a version or time.
pub struct Inputs {
    ctx: SessionContext,
    tables: Vec<DatasetRef>,
}

impl Inputs {
    pub async fn open(lake: &Lake, as_of: Option<&AsOf>) -> Result<Self> {
        // Large batches: fewer hand-offs to the encoders.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_batch_size(1 << 16));
        let schema = Arc::new(MemorySchemaProvider::new());
        let internal = |e: DataFusionError| MiningError::Read {
            dataset: history_dataset(),
            source: Box::new(e),
        };
        ctx.catalog("datafusion")
            .ok_or_else(|| internal(DataFusionError::Internal("no default catalog".into())))?
            .register_schema("staging", schema.clone())
            .map_err(internal)?;
        let mut tables = Vec::new();
        for name in INPUTS {
            let ds = dataset(name);
            let table = match lake.load(&ds, as_of).await {
                Ok(t) => t,
                Err(
                    LakeError::NoSuchDataset { .. }
                    | LakeError::NoSuchVersion { .. }
                    | LakeError::NoVersionAtTime { .. },
                ) => continue,
                Err(e) => return Err(e.into()),
            };
            table
                .update_datafusion_session(&ctx.state())
                .map_err(|source| lake.delta_err("register", &ds, source))?;
            let provider = table
                .table_provider()
                .await
                .map_err(|source| MiningError::Read {
                    dataset: ds.clone(),
                    source: Box::new(source),
                })?;
            schema
                .register_table(ds.table.clone(), provider)
                .map_err(|e| MiningError::Read {
                    dataset: ds.clone(),
                    source: Box::new(e),
                })?;
            tables.push(ds);
        }
        Ok(Self { ctx, tables })
    }

    /// The inputs that exist.
    pub fn tables(&self) -> Vec<DatasetRef> {
        self.tables.clone()
    }

    async fn query(&self, sql: &str, dataset: &DatasetRef) -> Result<DataFrame> {
        self.ctx.sql(sql).await.map_err(|source| MiningError::Read {
            dataset: dataset.clone(),
            source: Box::new(source),
        })
    }
}

/// The workspaces with stage history, sorted.
pub async fn history_workspaces(session: &Inputs) -> Result<Vec<WorkspaceId>> {
    let dataset = history_dataset();
    if !session.tables().contains(&dataset) {
        return Ok(Vec::new());
    }
    let batches = collect(
        session,
        &dataset,
        "SELECT DISTINCT CAST(workspace_id AS VARCHAR) AS w FROM staging.deal_stage_history ORDER BY w",
    )
    .await?;
    let mut out = Vec::new();
    for b in &batches {
        let col = StrCol::new(b.column(0).as_ref())
            .ok_or_else(|| bad(&dataset, "workspace_id", "a string"))?;
        for i in 0..col.len() {
            if let Some(w) = col.get(i) {
                out.push(WorkspaceId::new(w)?);
            }
        }
    }
    Ok(out)
}

pub(crate) fn history_dataset() -> DatasetRef {
    "staging.deal_stage_history"
        .parse()
        .expect("a valid dataset name")
}

fn dataset(name: &str) -> DatasetRef {
    name.parse().expect("a valid dataset name")
}

fn bad(dataset: &DatasetRef, column: &str, expected: &'static str) -> MiningError {
    MiningError::BadColumn {
        dataset: dataset.clone(),
        column: column.to_string(),
        expected,
    }
}

async fn collect(session: &Inputs, dataset: &DatasetRef, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = session.query(sql, dataset).await?;
    df.collect().await.map_err(|source| MiningError::Read {
        dataset: dataset.clone(),
        source: Box::new(source),
    })
}

/// Loads the mining input of `workspace`: `staging.deals` (amount, lead source, industry,
/// closed), the champion and blocker roles of `staging.deal_contacts`, the history, and, when
/// the `engagement` factor is configured, activity times. Missing datasets other than the
/// history read as empty.
pub async fn load_workspace(
    session: &Inputs,
    workspace: &WorkspaceId,
    config: &MiningConfig,
) -> Result<WorkspaceLog> {
    load_workspace_until(session, workspace, config, None).await
}

/// [`load_workspace`] as the history stood at `until` (event time, not table version): only
/// stage changes and activities before it, and a deal counts as closed only if it closed
/// before it. Deal attributes and contact roles are read as they are now.
pub async fn load_workspace_until(
    session: &Inputs,
    workspace: &WorkspaceId,
    config: &MiningConfig,
    until: Option<DateTime<Utc>>,
) -> Result<WorkspaceLog> {
    // Epoch seconds compare the same whether the column carries a time zone or not.
    let before = |column: &str| match until {
        Some(t) => format!(
            " AND date_part('epoch', {column}) < {}",
            t.timestamp_micros() as f64 / 1e6
        ),
        None => String::new(),
    };
    let started = std::time::Instant::now();
    let tables = session.tables();
    let ws = workspace.as_str();
    let mut index = DealIndex::new();
    let mut deals = Deals::default();

    // The four reads run at once (each scan decodes Parquet on its own), then are encoded in
    // order: the deals build the index the others are coded against.
    let deals_ds = dataset("staging.deals");
    let deals_sql = tables.contains(&deals_ds).then(|| {
        let closed = match until {
            Some(t) => format!(
                "coalesce(is_closed AND date_part('epoch', closed_at) < {}, false)",
                t.timestamp_micros() as f64 / 1e6
            ),
            None => "is_closed".to_string(),
        };
        format!(
            "SELECT id, CAST(amount_usd AS DOUBLE) AS amount_usd, lead_source, industry, \
             {closed} AS is_closed FROM staging.deals WHERE workspace_id = '{ws}'"
        )
    });
    let contacts_ds = dataset("staging.deal_contacts");
    let contacts_sql = tables.contains(&contacts_ds).then(|| {
        format!(
            "SELECT deal_id, lower(role) AS role FROM staging.deal_contacts \
             WHERE workspace_id = '{ws}' AND lower(role) IN ('champion', 'blocker')"
        )
    });
    let history_ds = history_dataset();
    let engagement = config.factors.contains(&Factor::Engagement);
    let history_sql = tables.contains(&history_ds).then(|| {
        format!(
            "SELECT deal_id, from_stage, to_stage, CAST(duration_days AS DOUBLE) AS duration_days{} \
             FROM staging.deal_stage_history WHERE workspace_id = '{ws}'{}",
            // Times are read only for the engagement factor.
            if engagement { ", transitioned_at" } else { "" },
            before("transitioned_at")
        )
    });
    let activities_ds = dataset("staging.activities");
    let activities_sql = (engagement && tables.contains(&activities_ds)).then(|| {
        format!(
            "SELECT deal_id, occurred_at FROM staging.activities \
             WHERE workspace_id = '{ws}' AND deal_id IS NOT NULL AND occurred_at IS NOT NULL{}",
            before("occurred_at")
        )
    });
    let read = |ds: &DatasetRef, sql: Option<String>| {
        let ds = ds.clone();
        async move {
            match sql {
                Some(sql) => collect(session, &ds, &sql).await.map(Some),
                None => Ok(None),
            }
        }
    };
    let (deal_batches, contact_batches, history_batches, activity_batches) = tokio::try_join!(
        read(&deals_ds, deals_sql),
        read(&contacts_ds, contacts_sql),
        read(&history_ds, history_sql),
        read(&activities_ds, activities_sql),
    )?;
    tracing::debug!(
        workspace = ws,
        seconds = started.elapsed().as_secs_f64(),
        "read deals, roles, history and activities"
    );

    // Deals: in order, building the index.
    if let Some(batches) = deal_batches {
        let ds = deals_ds.clone();
        let (i, d) = tokio::task::spawn_blocking(move || -> Result<(DealIndex, Deals)> {
            // The dictionary casts of every batch at once, then the batches in order.
            let prepared = batches
                .par_iter()
                .map(|b| Ok((Dict::prepare(b.column(2))?, Dict::prepare(b.column(3))?)))
                .collect::<Result<Vec<_>>>()?;
            for (b, p) in batches.iter().zip(prepared) {
                add_deals(&mut index, &mut deals, b, p, &ds)?;
            }
            Ok((index, deals))
        })
        .await
        .expect("the deal encoder does not panic")?;
        index = i;
        deals = d;
    }
    let known = index.len();
    deals.count = known;

    // Champion and blocker roles.
    if known > 0
        && let Some(batches) = &contact_batches
    {
        for b in batches {
            let codes = index.probe(b.column(0).as_ref(), false)?;
            let roles = StrCol::new(b.column(1).as_ref())
                .ok_or_else(|| bad(&contacts_ds, "role", "a string"))?;
            for (i, code) in codes.iter().enumerate() {
                if *code == NONE32 || *code as usize >= known {
                    continue;
                }
                match roles.get(i) {
                    Some("champion") => deals.champion[*code as usize] = true,
                    Some("blocker") => deals.blocker[*code as usize] = true,
                    _ => {}
                }
            }
        }
    }
    drop(contact_batches);

    // The history, encoded batch by batch.
    let Some(history_batches) = history_batches else {
        // No history at all: an empty log (nothing to mine).
        deals.count = index.len();
        return Ok(WorkspaceLog {
            workspace: ws.to_string(),
            deals,
            ..WorkspaceLog::default()
        });
    };
    let ds = history_ds.clone();
    let ws_name = ws.to_string();
    let (mut index, stages, transitions) = tokio::task::spawn_blocking(move || -> Result<_> {
        // The costly half of every batch at once (deal-id lookups, stage dictionary casts), then
        // the batches in order, so new ids and stage names get their codes in file order.
        let prepared = history_batches
            .par_iter()
            .map(|b| prepare_history(&index, b))
            .collect::<Result<Vec<_>>>()?;
        let rows = history_batches.iter().map(RecordBatch::num_rows).sum();
        let mut stages = Dict::new();
        let mut t = Transitions::default();
        t.reserve(rows);
        for (batch, p) in history_batches.iter().zip(prepared) {
            add_history(&mut index, &mut stages, &mut t, batch, p, &ds).map_err(|e| match e {
                MiningError::TooManyStages { max, .. } => MiningError::TooManyStages {
                    workspace: ws_name.clone(),
                    max,
                },
                e => e,
            })?;
        }
        Ok((index, stages, t))
    })
    .await
    .expect("the history encoder does not panic")?;
    deals.count = index.len();

    tracing::debug!(
        workspace = ws,
        rows = transitions.len(),
        seconds = started.elapsed().as_secs_f64(),
        "encoded history"
    );
    // Activity times, only for the engagement factor.
    let activities = match activity_batches {
        Some(batches) => {
            let (mut codes, mut times) = (Vec::new(), Vec::new());
            for b in &batches {
                codes.extend(index.probe(b.column(0).as_ref(), false)?);
                times.extend(micros(b.column(1).as_ref(), &activities_ds, "occurred_at")?);
            }
            let deals_n = index.len();
            Some(
                tokio::task::spawn_blocking(move || Activities::new(deals_n, &codes, &times))
                    .await
                    .expect("grouping activities does not panic"),
            )
        }
        None => None,
    };
    // The index is no longer needed; free it before mining.
    drop(index);

    Ok(WorkspaceLog {
        workspace: ws.to_string(),
        stages,
        deals,
        transitions,
        activities,
    })
}

/// Adds a batch of `staging.deals` rows (id, amount_usd, lead_source, industry, is_closed),
/// its lead source and industry columns prepared.
fn add_deals(
    index: &mut DealIndex,
    deals: &mut Deals,
    b: &RecordBatch,
    (sources_in, industries_in): (Prepared, Prepared),
    ds: &DatasetRef,
) -> Result<()> {
    let codes = index.insert_all(b.column(0).as_ref())?;
    let grow = index.len();
    if deals.amount_usd.len() < grow {
        let n = grow - deals.amount_usd.len();
        deals.amount_usd.extend(std::iter::repeat_n(f64::NAN, n));
        deals.lead_source.extend(std::iter::repeat_n(NONE16, n));
        deals.industry.extend(std::iter::repeat_n(NONE16, n));
        deals.champion.extend(std::iter::repeat_n(false, n));
        deals.blocker.extend(std::iter::repeat_n(false, n));
        deals.closed.extend(std::iter::repeat_n(false, n));
    }
    let amount = b
        .column(1)
        .as_primitive_opt::<arrow::datatypes::Float64Type>()
        .ok_or_else(|| bad(ds, "amount_usd", "a number"))?;
    let mut sources = Vec::with_capacity(b.num_rows());
    deals.lead_sources.extend(&sources_in, &mut sources)?;
    let mut industries = Vec::with_capacity(b.num_rows());
    deals.industries.extend(&industries_in, &mut industries)?;
    let closed =
        cast(b.column(4), &DataType::Boolean).map_err(|_| bad(ds, "is_closed", "a boolean"))?;
    let closed = closed.as_boolean();
    for (i, code) in codes.iter().enumerate() {
        if *code == NONE32 {
            continue;
        }
        let c = *code as usize;
        deals.amount_usd[c] = if amount.is_valid(i) {
            amount.value(i)
        } else {
            f64::NAN
        };
        deals.lead_source[c] = sources[i];
        deals.industry[c] = industries[i];
        deals.closed[c] = closed.is_valid(i) && closed.value(i);
    }
    Ok(())
}

/// The part of a history batch's encoding that needs no new codes: the known deals' codes and
/// the stage columns cast to dictionaries.
struct PreparedHistory {
    deals: Vec<u32>,
    from: Prepared,
    to: Prepared,
}

fn prepare_history(index: &DealIndex, b: &RecordBatch) -> Result<PreparedHistory> {
    Ok(PreparedHistory {
        deals: index.lookup(b.column(0).as_ref())?,
        from: Dict::prepare(b.column(1))?,
        to: Dict::prepare(b.column(2))?,
    })
}

/// Adds a batch of history rows (deal_id, from_stage, to_stage, duration_days[, transitioned_at]),
/// prepared by [`prepare_history`]: ids the index has not seen get codes here, in row order.
fn add_history(
    index: &mut DealIndex,
    stages: &mut Dict,
    t: &mut Transitions,
    b: &RecordBatch,
    mut p: PreparedHistory,
    ds: &DatasetRef,
) -> Result<()> {
    // Ids seen first in this batch (or an earlier one of the same parallel pass).
    if p.deals.contains(&NONE32) {
        let ids =
            StrCol::new(b.column(0).as_ref()).ok_or_else(|| bad(ds, "deal_id", "a string"))?;
        for (i, c) in p.deals.iter_mut().enumerate() {
            if *c == NONE32
                && let Some(id) = ids.get(i)
            {
                *c = index.insert(id);
            }
        }
    }
    t.deal.extend_from_slice(&p.deals);
    stages.extend(&p.from, &mut t.from)?;
    stages.extend(&p.to, &mut t.to)?;
    let days = b
        .column(3)
        .as_primitive_opt::<arrow::datatypes::Float64Type>()
        .ok_or_else(|| bad(ds, "duration_days", "a number"))?;
    if days.null_count() == 0 {
        t.days.extend_from_slice(days.values());
    } else {
        t.days.extend(days.iter().map(|d| d.unwrap_or(f64::NAN)));
    }
    if b.num_columns() > 4 {
        t.at.extend(micros(b.column(4).as_ref(), ds, "transitioned_at")?);
    }
    Ok(())
}

/// A timestamp column as microseconds since the epoch (UTC); NULL as `i64::MIN`.
fn micros(array: &dyn Array, ds: &DatasetRef, column: &str) -> Result<Vec<i64>> {
    let cast_to = DataType::Timestamp(TimeUnit::Microsecond, None);
    let arr: Arc<dyn Array> = match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => arrow::array::make_array(array.to_data()),
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            cast(array, &cast_to).map_err(|_| bad(ds, column, "a timestamp"))?
        }
        _ => return Err(bad(ds, column, "a timestamp")),
    };
    let ts = arr
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| bad(ds, column, "a timestamp"))?;
    Ok(if ts.null_count() == 0 {
        ts.values().to_vec()
    } else {
        ts.iter().map(|v| v.unwrap_or(i64::MIN)).collect()
    })
}
