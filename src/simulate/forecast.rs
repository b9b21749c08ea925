//! Deal forecasts: every open deal of a workspace simulated forward, summarized, and written to
//! `marts.deal_forecasts`.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Float64Builder, Int64Array, MapBuilder, MapFieldNames,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use chrono::{DateTime, Utc};

use super::deals::{OpenDeal, open_deals_in};
use super::engine::{SimConfig, SimDeal, Simulator};
use super::error::{Result, SimulateError};
use super::model::ChainModel;
use super::stats::{Calendar, DealStats};
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode, WriteOutcome};
use crate::project::DatasetSchema;
use crate::sql::{SessionOptions, SqlSession};

/// The dataset forecasts are written to.
pub const DEAL_FORECASTS: &str = "marts.deal_forecasts";
/// Default months in the close-date distribution.
pub const DEFAULT_MONTHS: u32 = 12;

/// Settings of a forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastOptions {
    pub config: SimConfig,
    /// Simulate as of this time (default: the workspace's latest stage change).
    pub as_of: Option<DateTime<Utc>>,
    /// Calendar months in the close-date distribution (then `later`).
    pub months: u32,
    /// Only this deal.
    pub deal: Option<String>,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        Self {
            config: SimConfig::default(),
            as_of: None,
            months: DEFAULT_MONTHS,
            deal: None,
        }
    }
}

/// One deal's forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct DealForecast {
    pub deal_id: String,
    pub stage: String,
    pub days_in_stage: f64,
    /// The model context the deal was simulated in.
    pub context_key: String,
    pub amount: f64,
    pub stats: DealStats,
    /// amount × p_win.
    pub expected_value: f64,
    pub value_p2_5: f64,
    pub value_p97_5: f64,
}

impl DealForecast {
    pub(super) fn new(deal: &OpenDeal, context_key: &str, stats: DealStats) -> Self {
        let (value_p2_5, value_p97_5) = stats.value_interval(deal.amount);
        Self {
            deal_id: deal.id.clone(),
            stage: deal.stage.clone(),
            days_in_stage: deal.days_in_stage,
            context_key: context_key.to_string(),
            amount: deal.amount,
            expected_value: stats.expected_value(deal.amount),
            value_p2_5,
            value_p97_5,
            stats,
        }
    }
}

/// A deal that was not simulated, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedDeal {
    pub deal_id: String,
    pub stage: String,
    pub reason: String,
}

/// The forecasts of a workspace's open deals.
#[derive(Debug, Clone)]
pub struct WorkspaceForecast {
    pub workspace: WorkspaceId,
    pub as_of: DateTime<Utc>,
    pub computed_at: DateTime<Utc>,
    pub calendar: Calendar,
    pub config: SimConfig,
    /// The model was mined from little closed history.
    pub low_confidence: bool,
    /// Only some deals were asked for (written by merge, not by replacing the workspace).
    pub partial: bool,
    pub deals: Vec<DealForecast>,
    pub skipped: Vec<SkippedDeal>,
}

/// Simulates `deals` with `model`: CPU-bound, on the current rayon pool (call it from a
/// blocking thread, not the async runtime). Deals whose stage the model does not know are
/// skipped, with the reason.
pub fn forecast_deals(
    model: &ChainModel,
    deals: &[OpenDeal],
    calendar: &Calendar,
    config: &SimConfig,
) -> Result<(Vec<DealForecast>, Vec<SkippedDeal>)> {
    let sim = Simulator::new(model);
    let mut kept: Vec<(&OpenDeal, SimDeal)> = Vec::with_capacity(deals.len());
    let mut skipped = Vec::new();
    for d in deals {
        match d.sim_deal(model, None) {
            Some(s) => kept.push((d, s)),
            None => skipped.push(SkippedDeal {
                deal_id: d.id.clone(),
                stage: d.stage.clone(),
                reason: format!(
                    "stage `{}` is not an open stage of the mined model ({})",
                    d.stage,
                    model.stages().join(", ")
                ),
            }),
        }
    }
    let sim_deals: Vec<SimDeal> = kept.iter().map(|(_, s)| *s).collect();
    let stats = sim.simulate(&sim_deals, config, |_, _, runs, spare| {
        DealStats::from_runs(runs, calendar, spare)
    })?;
    let forecasts = kept
        .iter()
        .zip(stats)
        .map(|((deal, s), stats)| {
            DealForecast::new(deal, &model.contexts()[s.context as usize].key, stats)
        })
        .collect();
    Ok((forecasts, skipped))
}

/// Loads the mined model and the open deals of `workspace` and forecasts them.
pub async fn forecast_workspace(
    lake: &Lake,
    workspace: &WorkspaceId,
    options: &ForecastOptions,
) -> Result<WorkspaceForecast> {
    let only = options.deal.clone().map(|d| BTreeSet::from([d]));
    forecast_selected(lake, workspace, options, only.as_ref()).await
}

/// Forecasts only `deals` (staging ids) of `workspace`, with one load of the model and of the
/// open deals: a partial forecast, written by merge on (workspace_id, deal_id). Ids that are not
/// open deals (closed since, or not in staging.deals) are not simulated: they are in `skipped`
/// with the reason. `options.deal` is not read.
pub async fn forecast_workspace_deals(
    lake: &Lake,
    workspace: &WorkspaceId,
    deals: &BTreeSet<String>,
    options: &ForecastOptions,
) -> Result<WorkspaceForecast> {
    let options = ForecastOptions {
        deal: None,
        ..options.clone()
    };
    forecast_selected(lake, workspace, &options, Some(deals)).await
}

async fn forecast_selected(
    lake: &Lake,
    workspace: &WorkspaceId,
    options: &ForecastOptions,
    only: Option<&BTreeSet<String>>,
) -> Result<WorkspaceForecast> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: Some(workspace.clone()),
            ..SessionOptions::default()
        },
    )
    .await?;
    let model = ChainModel::from_session(&session, workspace).await?;
    let (mut deals, as_of) = open_deals_in(&session, options.as_of).await?;
    let mut not_open = Vec::new();
    if let Some(only) = only {
        deals.retain(|d| only.contains(&d.id));
        if let Some(id) = &options.deal
            && deals.is_empty()
        {
            return Err(no_such_deal(id, workspace));
        }
        not_open = only
            .iter()
            .filter(|id| !deals.iter().any(|d| &d.id == *id))
            .map(|id| SkippedDeal {
                deal_id: id.clone(),
                stage: String::new(),
                reason: "not an open deal of staging.deals (closed, or not there)".to_string(),
            })
            .collect();
    }
    let calendar = Calendar::new(as_of.date_naive(), options.months);
    let config = options.config.clone();
    let model = Arc::new(model);
    let low_confidence = model.low_confidence();
    let (deals, mut skipped, calendar) = {
        let model = model.clone();
        tokio::task::spawn_blocking(move || {
            forecast_deals(&model, &deals, &calendar, &config).map(|(f, s)| (f, s, calendar))
        })
        .await
        .map_err(|e| SimulateError::Task {
            reason: e.to_string(),
        })??
    };
    skipped.extend(not_open);
    Ok(WorkspaceForecast {
        workspace: workspace.clone(),
        as_of,
        computed_at: Utc::now(),
        calendar,
        config: options.config.clone(),
        low_confidence,
        partial: only.is_some(),
        deals,
        skipped,
    })
}

pub(super) fn no_such_deal(id: &str, workspace: &WorkspaceId) -> SimulateError {
    SimulateError::NoSuchDeal {
        deal: id.to_string(),
        workspace: workspace.to_string(),
        hint: " (closed deals are not simulated; list open ones with: revlake sql \"SELECT id, stage FROM staging.deals WHERE NOT is_closed\")".to_string(),
    }
}

impl WorkspaceForecast {
    /// The rows of `marts.deal_forecasts`, one per deal.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let n = self.deals.len();
        let ts = |t: DateTime<Utc>| -> ArrayRef {
            Arc::new(
                TimestampMicrosecondArray::from(vec![t.timestamp_micros(); n]).with_timezone("UTC"),
            )
        };
        let f64s = |f: &dyn Fn(&DealForecast) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(self.deals.iter().map(f)))
        };
        let opt = |f: &dyn Fn(&DealForecast) -> Option<f64>| -> ArrayRef {
            Arc::new(Float64Array::from_iter(self.deals.iter().map(f)))
        };
        let strs = |f: &dyn Fn(&DealForecast) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(self.deals.iter().map(f)))
        };
        let mut months = MapBuilder::new(
            Some(MapFieldNames {
                entry: "key_value".into(),
                key: "key".into(),
                value: "value".into(),
            }),
            StringBuilder::new(),
            Float64Builder::new(),
        );
        let labels = self.calendar.labels();
        let dataset: DatasetRef = DEAL_FORECASTS.parse()?;
        for d in &self.deals {
            for (label, p) in labels.iter().zip(&d.stats.won_by_month) {
                if *p > 0.0 {
                    months.keys().append_value(label);
                    months.values().append_value(*p);
                }
            }
            months.append(true).map_err(|source| SimulateError::Arrow {
                dataset: dataset.clone(),
                source,
            })?;
        }
        let months: ArrayRef = Arc::new(months.finish());
        let columns: Vec<(&str, ArrayRef, bool)> = vec![
            (
                "workspace_id",
                Arc::new(StringArray::from(vec![self.workspace.as_str(); n])),
                false,
            ),
            ("deal_id", strs(&|d| &d.deal_id), false),
            ("stage", strs(&|d| &d.stage), true),
            ("days_in_stage", f64s(&|d| d.days_in_stage), true),
            ("context_key", strs(&|d| &d.context_key), true),
            ("amount", f64s(&|d| d.amount), true),
            (
                "runs",
                Arc::new(Int64Array::from_iter_values(
                    self.deals.iter().map(|d| i64::from(d.stats.runs)),
                )),
                true,
            ),
            (
                "seed",
                Arc::new(Int64Array::from(vec![self.config.seed as i64; n])),
                true,
            ),
            ("p_win", f64s(&|d| d.stats.p_win), true),
            ("p_win_low", f64s(&|d| d.stats.p_win_low), true),
            ("p_win_high", f64s(&|d| d.stats.p_win_high), true),
            (
                "p_open",
                f64s(&|d| f64::from(d.stats.open) / f64::from(d.stats.runs.max(1))),
                true,
            ),
            ("expected_days", opt(&|d| d.stats.expected_days), true),
            ("days_p2_5", opt(&|d| d.stats.days_p2_5), true),
            ("days_p97_5", opt(&|d| d.stats.days_p97_5), true),
            ("expected_value", f64s(&|d| d.expected_value), true),
            ("value_p2_5", f64s(&|d| d.value_p2_5), true),
            ("value_p97_5", f64s(&|d| d.value_p97_5), true),
            ("expected_steps", f64s(&|d| d.stats.expected_steps), true),
            ("won_by_month", months, true),
            (
                "low_confidence",
                Arc::new(BooleanArray::from(vec![self.low_confidence; n])),
                true,
            ),
            ("as_of", ts(self.as_of), true),
            ("computed_at", ts(self.computed_at), true),
        ];
        super::output::batch_of(dataset, columns)
    }

    /// Writes the forecasts to `marts.deal_forecasts`: the workspace's rows replaced, or, for a
    /// partial forecast, merged on (workspace_id, deal_id).
    pub async fn write(&self, lake: &Lake, schema: Option<&DatasetSchema>) -> Result<WriteOutcome> {
        let mode = if self.partial {
            WriteMode::Merge
        } else {
            WriteMode::OverwriteWorkspace(self.workspace.clone())
        };
        super::output::write_mart(
            lake,
            DEAL_FORECASTS,
            schema,
            mode,
            Some(vec!["workspace_id".into(), "deal_id".into()]),
            &self.config,
            self.to_batch()?,
        )
        .await
    }
}
