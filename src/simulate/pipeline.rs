//! Pipeline forecasts: the distribution of closed-won revenue of a workspace, per rep, per
//! segment and per period, from the runs of every open deal summed run by run.
//!
//! ```text
//! open deals ──view (current / best / worst)──▶ Simulator ──▶ per deal, per run: month bucket
//!                                                             of a win, or not won (u8)
//!   group (workspace | rep | segment) ──▶ Σ amount per (bucket, run) ──▶ per period and run:
//!   booked + Σ buckets in the period ──▶ mean, sd, p10 / p50 / p90, P(total ≥ quota)
//! ```
//!
//! Runs of different deals are independent draws, so run `r` of every deal together is one
//! joint outcome of the pipeline: totals are summed per run across deals, never by adding
//! percentiles. Memory: one byte per deal and run for the view being summarized.
//!
//! # Views
//!
//! The product notes give every forecast a *current trajectory*, a *best case* and a *worst
//! case*. Here they are context envelopes simulated with the same random numbers:
//!
//! * `current_trajectory`: every deal as it is;
//! * `best_case`: every deal with a champion, no unresolved blocker and a fresh touch (the
//!   factors the mined model has);
//! * `worst_case`: every deal without a champion, with a blocker and gone cold.
//!
//! The notes show these per deal; here they are summed over the pipeline (each row of
//! `marts.pipeline_forecast` has all three), and p10 / p90 of each view give the spread within it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use rayon::prelude::*;

use super::deals::{OpenDeal, engagement_bands, open_deals_in};
use super::engine::{Outcome, SimConfig, SimDeal, Simulator};
use super::error::{Result, SimulateError};
use super::facts::{DealFacts, Quota, check_workspace, deal_facts, quotas};
use super::forecast::SkippedDeal;
use super::model::ChainModel;
use super::stats::Calendar;
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode, WriteOutcome};
use crate::project::DatasetSchema;
use crate::sql::{SessionOptions, SqlSession};

/// The dataset pipeline forecasts are written to.
pub const PIPELINE_FORECAST: &str = "marts.pipeline_forecast";
/// The group of deals without an owner / a segment.
pub const UNASSIGNED: &str = "(unassigned)";
pub const NO_SEGMENT: &str = "(none)";
/// A run that was not won (else the [`Calendar`] bucket of its close).
pub const NOT_WON: u8 = u8::MAX;

/// A forecast view (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    CurrentTrajectory,
    BestCase,
    WorstCase,
}

impl View {
    pub const ALL: [View; 3] = [View::CurrentTrajectory, View::BestCase, View::WorstCase];

    pub fn name(self) -> &'static str {
        match self {
            View::CurrentTrajectory => "current_trajectory",
            View::BestCase => "best_case",
            View::WorstCase => "worst_case",
        }
    }

    /// The deal as this view sees it under `model`.
    pub fn apply(self, model: &ChainModel, deal: &OpenDeal) -> OpenDeal {
        let mut d = deal.clone();
        let has = |f: &str, l: &str| model.factor_levels(f).contains(l);
        let (champion, blocker) = match self {
            View::CurrentTrajectory => return d,
            View::BestCase => ("true", "false"),
            View::WorstCase => ("false", "true"),
        };
        if has("champion", champion) {
            d.context.set("champion", champion);
        }
        if has("blocker", blocker) {
            d.context.set("blocker", blocker);
        }
        if let Some((_, bands)) = engagement_bands(model) {
            d.days_since_touch = Some(match self {
                View::BestCase => 0.0,
                _ => bands.iter().map(|b| b.1).fold(0.0, f64::max) + 1.0,
            });
        }
        d
    }
}

/// What a row groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Workspace,
    Rep,
    Segment,
}

impl Dimension {
    pub const ALL: [Dimension; 3] = [Dimension::Workspace, Dimension::Rep, Dimension::Segment];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Workspace => "workspace",
            Dimension::Rep => "rep",
            Dimension::Segment => "segment",
        }
    }
}

/// What a period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeriodKind {
    /// Every win of the open pipeline, whenever it closes (nothing booked).
    All,
    Month,
    Quarter,
    /// A quota period that is neither a calendar month nor a quarter (whole months).
    Quota,
}

impl PeriodKind {
    pub fn name(self) -> &'static str {
        match self {
            PeriodKind::All => "all",
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
            PeriodKind::Quota => "quota",
        }
    }
}

/// A period of close dates.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub kind: PeriodKind,
    /// `all`, `2025-07`, `2025-Q3`, or `2025-07-01..2025-12-31`.
    pub label: String,
    /// First and last day, inclusive (`None` for `all`).
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    /// The [`Calendar`] buckets it covers (the months from the as-of month on).
    pub buckets: Range<usize>,
}

impl Period {
    fn contains(&self, day: NaiveDate) -> bool {
        match (self.start, self.end) {
            (Some(s), Some(e)) => s <= day && day <= e,
            _ => false,
        }
    }
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists in every month")
}

fn month_index(first: NaiveDate, d: NaiveDate) -> i64 {
    (i64::from(d.year()) - i64::from(first.year())) * 12 + i64::from(d.month())
        - i64::from(first.month())
}

fn last_day(start: NaiveDate, months: u32) -> NaiveDate {
    (start + Months::new(months))
        .pred_opt()
        .expect("a day before any month start")
}

/// The periods of a forecast: `all`, each month of the calendar, each quarter whose months
/// from the as-of month on are all in it, and the quota periods of whole months that are
/// neither. Returns them and the quota periods left out (not whole months, or past the horizon).
/// Quota periods that ended before the as-of month are history, not forecast: they are
/// neither listed nor counted.
pub fn periods(calendar: &Calendar, quotas: &[Quota]) -> (Vec<Period>, usize) {
    let months = calendar.labels().len() - 1;
    let first = month_start(calendar.as_of());
    let mut out = vec![Period {
        kind: PeriodKind::All,
        label: "all".into(),
        start: None,
        end: None,
        buckets: 0..months + 1,
    }];
    let span = |s: NaiveDate, e: NaiveDate| {
        let lo = month_index(first, s).max(0) as usize;
        let hi = (month_index(first, e) + 1).max(0) as usize;
        lo..hi.max(lo)
    };
    for m in 0..months as u32 {
        let s = first + Months::new(m);
        out.push(Period {
            kind: PeriodKind::Month,
            label: s.format("%Y-%m").to_string(),
            start: Some(s),
            end: Some(last_day(s, 1)),
            buckets: span(s, s),
        });
    }
    let q0 = NaiveDate::from_ymd_opt(first.year(), (first.month0() / 3) * 3 + 1, 1)
        .expect("a quarter's first day");
    let mut q = q0;
    while month_index(first, q) + 3 <= months as i64 {
        let e = last_day(q, 3);
        out.push(Period {
            kind: PeriodKind::Quarter,
            label: format!("{}-Q{}", q.year(), q.month0() / 3 + 1),
            start: Some(q),
            end: Some(e),
            buckets: span(q, e),
        });
        q = q + Months::new(3);
    }
    let mut skipped = 0;
    let distinct: BTreeSet<(NaiveDate, NaiveDate)> =
        quotas.iter().map(|q| (q.start, q.end)).collect();
    for (s, e) in distinct {
        if e < first || out.iter().any(|p| p.start == Some(s) && p.end == Some(e)) {
            continue;
        }
        let whole = s.day() == 1 && e.succ_opt().is_some_and(|n| n.day() == 1) && s <= e;
        if !whole || month_index(first, e) >= months as i64 {
            skipped += 1;
            continue;
        }
        out.push(Period {
            kind: PeriodKind::Quota,
            label: format!("{s}..{e}"),
            start: Some(s),
            end: Some(e),
            buckets: span(s, e),
        });
    }
    (out, skipped)
}

/// Mean, standard deviation and percentiles of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distribution {
    pub mean: f64,
    pub sd: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

impl Distribution {
    /// Summarizes `values` (sorted in place); percentiles interpolate linearly between order
    /// statistics (numpy's default).
    pub fn of(values: &mut [f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                mean: 0.0,
                sd: 0.0,
                p10: 0.0,
                p50: 0.0,
                p90: 0.0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        values.sort_unstable_by(f64::total_cmp);
        let q = |p| crate::mining::quantile_sorted(values, p);
        Self {
            mean,
            sd: var.sqrt(),
            p10: q(0.1),
            p50: q(0.5),
            p90: q(0.9),
        }
    }
}

/// Share of `totals` at or above `quota`.
pub fn reach_probability(totals: &[f64], quota: f64) -> f64 {
    if totals.is_empty() {
        return 0.0;
    }
    totals.iter().filter(|t| **t >= quota).count() as f64 / totals.len() as f64
}

/// Σ amount of the won runs per (bucket, run), bucket-major: `members` are (deal, amount) and
/// `cells[deal]` the deal's runs ([`NOT_WON`] or a bucket).
pub fn bucket_totals(
    cells: &[Vec<u8>],
    members: &[(usize, f64)],
    buckets: usize,
    runs: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; buckets * runs];
    for &(deal, amount) in members {
        for (r, &b) in cells[deal].iter().enumerate().take(runs) {
            if b != NOT_WON && (b as usize) < buckets {
                out[b as usize * runs + r] += amount;
            }
        }
    }
    out
}

/// Per run: `booked` plus the won amount in `period`'s buckets.
pub fn period_totals(bucket_totals: &[f64], runs: usize, period: &Period, booked: f64) -> Vec<f64> {
    let mut out = vec![booked; runs];
    for b in period.buckets.clone() {
        if let Some(row) = bucket_totals.get(b * runs..(b + 1) * runs) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
    }
    out
}

/// The runs of one deal as bytes: the bucket of each won run's close, [`NOT_WON`] otherwise.
fn encode(runs: super::engine::RunOutcomes<'_>, calendar: &Calendar) -> Vec<u8> {
    runs.outcome
        .iter()
        .zip(runs.days)
        .map(|(o, d)| {
            if *o == Outcome::Won as u8 {
                calendar.bucket(*d) as u8
            } else {
                NOT_WON
            }
        })
        .collect()
}

/// A deal the forecast sums: the deal, and the groups it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineDeal {
    pub deal: OpenDeal,
    pub owner: String,
    pub segment: String,
}

/// Revenue won before the as-of time.
#[derive(Debug, Clone, PartialEq)]
pub struct Booked {
    pub owner: String,
    pub segment: String,
    pub amount: f64,
    pub closed: NaiveDate,
}

/// One row of `marts.pipeline_forecast`.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRow {
    pub view: View,
    pub dimension: Dimension,
    pub group: String,
    pub period: Period,
    /// Open deals of the group simulated, and their amount.
    pub open_deals: u64,
    pub open_amount: f64,
    /// Won in the period before the as-of time (0 for `all`).
    pub booked: f64,
    /// Closed-won revenue in the period: booked plus the simulated wins.
    pub revenue: Distribution,
    /// The quota of the rep (of all reps with one, for the workspace) for exactly this period.
    pub quota: Option<f64>,
    /// P(revenue ≥ quota).
    pub p_quota: Option<f64>,
}

/// What [`forecast_pipeline`] gives.
#[derive(Debug, Clone)]
pub struct PipelineResult {
    pub rows: Vec<PipelineRow>,
    /// The workspace's closed-won revenue per run over the whole open pipeline (current
    /// trajectory, period `all`), in run order: the histogram's data.
    pub workspace_runs: Vec<f64>,
    pub skipped: Vec<SkippedDeal>,
    /// Quota periods neither whole months nor within the horizon.
    pub skipped_quotas: usize,
}

/// A group's open deals (index, amount) and bookings.
type Members<'a> = (Vec<(usize, f64)>, Vec<&'a Booked>);

/// Simulates `deals` in every view and sums them per workspace, rep, segment and period:
/// CPU-bound, on the current rayon pool.
pub fn forecast_pipeline(
    model: &ChainModel,
    workspace: &str,
    deals: &[PipelineDeal],
    booked: &[Booked],
    quotas: &[Quota],
    calendar: &Calendar,
    config: &SimConfig,
) -> Result<PipelineResult> {
    let sim = Simulator::new(model);
    let mut kept: Vec<&PipelineDeal> = Vec::with_capacity(deals.len());
    let mut skipped = Vec::new();
    for d in deals {
        if d.deal.sim_deal(model, None).is_some() {
            kept.push(d);
        } else {
            skipped.push(SkippedDeal {
                deal_id: d.deal.id.clone(),
                stage: d.deal.stage.clone(),
                reason: format!(
                    "stage `{}` is not an open stage of the mined model",
                    d.deal.stage
                ),
            });
        }
    }
    let (periods, skipped_quotas) = periods(calendar, quotas);
    let buckets = calendar.labels().len();
    let runs = config.runs as usize;

    // Groups: (dimension, key) → members (deal index, amount) and booked revenue.
    let key_of = |dim: Dimension, owner: &str, segment: &str| match dim {
        Dimension::Workspace => workspace.to_string(),
        Dimension::Rep => owner.to_string(),
        Dimension::Segment => segment.to_string(),
    };
    let mut groups: BTreeMap<(Dimension, String), Members<'_>> = BTreeMap::new();
    // The workspace row always exists; others only with deals, bookings or quotas.
    groups
        .entry((Dimension::Workspace, workspace.to_string()))
        .or_default();
    for (i, d) in kept.iter().enumerate() {
        for dim in Dimension::ALL {
            groups
                .entry((dim, key_of(dim, &d.owner, &d.segment)))
                .or_default()
                .0
                .push((i, d.deal.amount));
        }
    }
    for b in booked {
        if !periods.iter().any(|p| p.contains(b.closed)) {
            continue;
        }
        for dim in Dimension::ALL {
            groups
                .entry((dim, key_of(dim, &b.owner, &b.segment)))
                .or_default()
                .1
                .push(b);
        }
    }
    for q in quotas {
        groups
            .entry((Dimension::Rep, q.owner_id.clone()))
            .or_default();
    }
    let quota_of = |dim: Dimension, key: &str, p: &Period| -> Option<f64> {
        let matching = quotas.iter().filter(|q| {
            Some(q.start) == p.start
                && Some(q.end) == p.end
                && match dim {
                    Dimension::Rep => q.owner_id == key,
                    Dimension::Workspace => true,
                    Dimension::Segment => false,
                }
        });
        let (n, sum) = matching.fold((0, 0.0), |(n, s), q| (n + 1, s + q.amount));
        (n > 0).then_some(sum)
    };

    let groups: Vec<_> = groups.into_iter().collect();
    let mut rows = Vec::new();
    let mut workspace_runs = Vec::new();
    for view in View::ALL {
        let sim_deals: Vec<SimDeal> = kept
            .iter()
            .map(|d| {
                view.apply(model, &d.deal)
                    .sim_deal(model, None)
                    .expect("an open stage in every view: views change only the context")
            })
            .collect();
        let cells = sim.simulate(&sim_deals, config, |_, _, r, _| encode(r, calendar))?;
        let per_group: Vec<(Vec<PipelineRow>, Option<Vec<f64>>)> = groups
            .par_iter()
            .map(|((dim, key), (members, booked))| {
                let totals = bucket_totals(&cells, members, buckets, runs);
                let open_amount = members.iter().map(|m| m.1).sum();
                let mut keep = None;
                let rows = periods
                    .iter()
                    .map(|p| {
                        let booked_here: f64 = booked
                            .iter()
                            .filter(|b| p.contains(b.closed))
                            .map(|b| b.amount)
                            .sum();
                        let mut t = period_totals(&totals, runs, p, booked_here);
                        let quota = quota_of(*dim, key, p);
                        let p_quota = quota.map(|q| reach_probability(&t, q));
                        if *dim == Dimension::Workspace
                            && p.kind == PeriodKind::All
                            && view == View::CurrentTrajectory
                        {
                            keep = Some(t.clone());
                        }
                        PipelineRow {
                            view,
                            dimension: *dim,
                            group: key.clone(),
                            period: p.clone(),
                            open_deals: members.len() as u64,
                            open_amount,
                            booked: booked_here,
                            revenue: Distribution::of(&mut t),
                            quota,
                            p_quota,
                        }
                    })
                    .collect();
                (rows, keep)
            })
            .collect();
        for (r, keep) in per_group {
            rows.extend(r);
            if let Some(k) = keep {
                workspace_runs = k;
            }
        }
    }
    Ok(PipelineResult {
        rows,
        workspace_runs,
        skipped,
        skipped_quotas,
    })
}

/// Everything a forecast of one workspace reads: the mined model, its open deals at the as-of
/// time, every deal's facts and the quotas.
pub struct ForecastInputs {
    pub workspace: WorkspaceId,
    pub as_of: DateTime<Utc>,
    pub model: Arc<ChainModel>,
    pub deals: Vec<OpenDeal>,
    pub facts: HashMap<String, DealFacts>,
    pub quotas: Vec<Quota>,
}

impl ForecastInputs {
    /// Loads the inputs of `workspace` (refused when it has no deals) as of `as_of` (default:
    /// the latest stage change).
    pub async fn load(
        lake: &Lake,
        workspace: &WorkspaceId,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Self> {
        check_workspace(lake, workspace).await?;
        let session = SqlSession::open(
            lake,
            &SessionOptions {
                workspace: Some(workspace.clone()),
                ..SessionOptions::default()
            },
        )
        .await?;
        let model = ChainModel::from_session(&session, workspace).await?;
        let (deals, as_of) = open_deals_in(&session, as_of).await?;
        Ok(Self {
            workspace: workspace.clone(),
            as_of,
            model: Arc::new(model),
            deals,
            facts: deal_facts(&session).await?,
            quotas: quotas(&session).await?,
        })
    }

    /// The open deals with their owner and segment.
    pub fn pipeline_deals(&self) -> Vec<PipelineDeal> {
        self.deals
            .iter()
            .map(|d| {
                let f = self.facts.get(&d.id);
                PipelineDeal {
                    deal: d.clone(),
                    owner: f
                        .and_then(|f| f.owner_id.clone())
                        .unwrap_or_else(|| UNASSIGNED.into()),
                    segment: f
                        .and_then(|f| f.segment.clone())
                        .unwrap_or_else(|| NO_SEGMENT.into()),
                }
            })
            .collect()
    }

    /// The deals won by the as-of time.
    pub fn booked(&self) -> Vec<Booked> {
        self.facts
            .values()
            .filter(|f| f.is_won)
            .filter_map(|f| {
                let closed = f.closed_at.filter(|t| *t <= self.as_of)?;
                Some(Booked {
                    owner: f.owner_id.clone().unwrap_or_else(|| UNASSIGNED.into()),
                    segment: f.segment.clone().unwrap_or_else(|| NO_SEGMENT.into()),
                    amount: f.amount,
                    closed: closed.date_naive(),
                })
            })
            .collect()
    }
}

/// A workspace's pipeline forecast.
#[derive(Debug, Clone)]
pub struct PipelineForecast {
    pub workspace: WorkspaceId,
    pub as_of: DateTime<Utc>,
    pub computed_at: DateTime<Utc>,
    pub config: SimConfig,
    pub low_confidence: bool,
    pub result: PipelineResult,
}

/// Runs [`forecast_pipeline`] on the inputs, off the async runtime.
pub async fn pipeline_forecast(
    inputs: &ForecastInputs,
    months: u32,
    config: &SimConfig,
) -> Result<PipelineForecast> {
    let calendar = Calendar::new(inputs.as_of.date_naive(), months);
    let (model, deals, booked, quotas) = (
        inputs.model.clone(),
        inputs.pipeline_deals(),
        inputs.booked(),
        inputs.quotas.clone(),
    );
    let (cfg, ws) = (config.clone(), inputs.workspace.to_string());
    let result = tokio::task::spawn_blocking(move || {
        forecast_pipeline(&model, &ws, &deals, &booked, &quotas, &calendar, &cfg)
    })
    .await
    .map_err(|e| SimulateError::Task {
        reason: e.to_string(),
    })??;
    Ok(PipelineForecast {
        workspace: inputs.workspace.clone(),
        as_of: inputs.as_of,
        computed_at: Utc::now(),
        config: config.clone(),
        low_confidence: inputs.model.low_confidence(),
        result,
    })
}

impl PipelineForecast {
    /// The rows of `marts.pipeline_forecast`.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let rows = &self.result.rows;
        let n = rows.len();
        let dataset: DatasetRef = PIPELINE_FORECAST.parse()?;
        let ts = |t: DateTime<Utc>| -> ArrayRef {
            Arc::new(
                TimestampMicrosecondArray::from(vec![t.timestamp_micros(); n]).with_timezone("UTC"),
            )
        };
        let f64s = |f: &dyn Fn(&PipelineRow) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
        };
        let opt = |f: &dyn Fn(&PipelineRow) -> Option<f64>| -> ArrayRef {
            Arc::new(Float64Array::from_iter(rows.iter().map(f)))
        };
        let strs = |f: &dyn Fn(&PipelineRow) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
        };
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch");
        let dates = |f: &dyn Fn(&PipelineRow) -> Option<NaiveDate>| -> ArrayRef {
            Arc::new(Date32Array::from_iter(
                rows.iter()
                    .map(|r| f(r).map(|d| (d - epoch).num_days() as i32)),
            ))
        };
        let columns: Vec<(&str, ArrayRef, bool)> = vec![
            (
                "workspace_id",
                Arc::new(StringArray::from(vec![self.workspace.as_str(); n])),
                false,
            ),
            ("view", strs(&|r| r.view.name()), false),
            ("dimension", strs(&|r| r.dimension.name()), false),
            ("group_key", strs(&|r| &r.group), false),
            ("period_kind", strs(&|r| r.period.kind.name()), false),
            ("period", strs(&|r| &r.period.label), false),
            ("period_start", dates(&|r| r.period.start), true),
            ("period_end", dates(&|r| r.period.end), true),
            (
                "open_deals",
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.open_deals as i64),
                )),
                true,
            ),
            ("open_amount", f64s(&|r| r.open_amount), true),
            ("booked", f64s(&|r| r.booked), true),
            ("mean", f64s(&|r| r.revenue.mean), true),
            ("sd", f64s(&|r| r.revenue.sd), true),
            ("p10", f64s(&|r| r.revenue.p10), true),
            ("p50", f64s(&|r| r.revenue.p50), true),
            ("p90", f64s(&|r| r.revenue.p90), true),
            ("quota", opt(&|r| r.quota), true),
            ("p_quota", opt(&|r| r.p_quota), true),
            (
                "runs",
                Arc::new(Int64Array::from(vec![i64::from(self.config.runs); n])),
                true,
            ),
            (
                "seed",
                Arc::new(Int64Array::from(vec![self.config.seed as i64; n])),
                true,
            ),
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

    /// Replaces the workspace's rows of `marts.pipeline_forecast`.
    pub async fn write(&self, lake: &Lake, schema: Option<&DatasetSchema>) -> Result<WriteOutcome> {
        super::output::write_mart(
            lake,
            PIPELINE_FORECAST,
            schema,
            WriteMode::OverwriteWorkspace(self.workspace.clone()),
            None,
            &self.config,
            self.to_batch()?,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::model::{CLOSED_LOST, CLOSED_WON};

    fn june() -> Calendar {
        Calendar::new(NaiveDate::from_ymd_opt(2025, 6, 15).unwrap(), 4)
    }

    #[test]
    fn pipeline_totals_are_summed_per_run_not_per_percentile() {
        // Three deals, five runs. Buckets: 0 = June, 1 = July; NOT_WON otherwise.
        let w = NOT_WON;
        let cells = vec![
            vec![0, 0, w, w, 1], // 100
            vec![w, 1, 1, w, w], // 50
            vec![0, w, w, w, 0], // 10
        ];
        let members = [(0, 100.0), (1, 50.0), (2, 10.0)];
        let t = bucket_totals(&cells, &members, 5, 5);
        let (periods, _) = periods(&june(), &[]);
        let all = &periods[0];
        let mut totals = period_totals(&t, 5, all, 0.0);
        // Per run: 110, 150, 50, 0, 110.
        assert_eq!(totals, [110.0, 150.0, 50.0, 0.0, 110.0]);
        let d = Distribution::of(&mut totals);
        assert!((d.mean - 84.0).abs() < 1e-12);
        // Sorted 0, 50, 110, 110, 150: p10 at 0.4 → 20; p50 = 110; p90 at 3.6 → 134.
        assert!((d.p10 - 20.0).abs() < 1e-12, "{d:?}");
        assert_eq!(d.p50, 110.0);
        assert!((d.p90 - 134.0).abs() < 1e-12, "{d:?}");
        // Adding the deals' own p90s would give 100 + 50 + 10 = 160, above any run.
        // June alone, with 30 booked: 130, 130, 30, 30, 140.
        let june_p = periods.iter().find(|p| p.label == "2025-06").unwrap();
        let june_t = period_totals(&t, 5, june_p, 30.0);
        assert_eq!(june_t, [140.0, 130.0, 30.0, 30.0, 40.0]);
        assert_eq!(reach_probability(&june_t, 130.0), 0.4);
        assert_eq!(reach_probability(&june_t, 10.0), 1.0);
    }

    #[test]
    fn periods_cover_months_quarters_and_whole_month_quotas() {
        let q = |s: (i32, u32, u32), e: (i32, u32, u32)| Quota {
            owner_id: "r1".into(),
            start: NaiveDate::from_ymd_opt(s.0, s.1, s.2).unwrap(),
            end: NaiveDate::from_ymd_opt(e.0, e.1, e.2).unwrap(),
            amount: 1.0,
        };
        let quotas = [
            q((2025, 4, 1), (2025, 6, 30)), // Q2: a quarter already listed
            q((2025, 6, 1), (2025, 8, 31)), // three whole months: its own period
            q((2025, 6, 10), (2025, 7, 9)), // not whole months: left out
            q((2026, 1, 1), (2026, 3, 31)), // beyond the 4-month horizon: left out
            q((2025, 1, 1), (2025, 3, 31)), // ended before the as-of month: history, not listed
        ];
        let (p, skipped) = periods(&june(), &quotas);
        let labels: Vec<&str> = p.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "all",
                "2025-06",
                "2025-07",
                "2025-08",
                "2025-09",
                "2025-Q2",
                "2025-Q3",
                "2025-06-01..2025-08-31"
            ]
        );
        assert_eq!(skipped, 2);
        // Q2 began before the as-of month: only June is simulated, April and May are booked.
        assert_eq!(p[5].buckets, 0..1);
        assert_eq!(p[6].buckets, 1..4);
        assert_eq!(p[7].buckets, 0..3);
        assert_eq!(p[0].buckets, 0..5);
        assert!(p[5].contains(NaiveDate::from_ymd_opt(2025, 4, 2).unwrap()));
    }

    #[test]
    fn reps_sum_to_the_workspace_and_quota_probability_uses_the_rep_quota() {
        let mut b = ChainModel::builder(&["proposal", CLOSED_WON, CLOSED_LOST]).unwrap();
        b.add_transition("*", "proposal", CLOSED_WON, 0.5).unwrap();
        b.add_transition("*", "proposal", CLOSED_LOST, 0.5).unwrap();
        b.add_durations("*", "proposal", &[1.0, 5.0]).unwrap();
        let model = b.build().unwrap();
        let deal = |id: &str, owner: &str, amount: f64| PipelineDeal {
            deal: OpenDeal::new(id, "proposal", amount, 0.0),
            owner: owner.into(),
            segment: "smb".into(),
        };
        let deals = [
            deal("a", "r1", 100.0),
            deal("b", "r1", 50.0),
            deal("c", "r2", 10.0),
        ];
        let booked = [Booked {
            owner: "r2".into(),
            segment: "smb".into(),
            amount: 7.0,
            closed: NaiveDate::from_ymd_opt(2025, 6, 2).unwrap(),
        }];
        let quota = Quota {
            owner_id: "r1".into(),
            start: NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
            end: NaiveDate::from_ymd_opt(2025, 6, 30).unwrap(),
            amount: 100.0,
        };
        let cfg = SimConfig {
            runs: 4_000,
            seed: 3,
            ..SimConfig::default()
        };
        let r = forecast_pipeline(&model, "w", &deals, &booked, &[quota], &june(), &cfg).unwrap();
        let row = |dim: Dimension, g: &str, p: &str| {
            r.rows
                .iter()
                .find(|x| {
                    x.view == View::CurrentTrajectory
                        && x.dimension == dim
                        && x.group == g
                        && x.period.label == p
                })
                .unwrap()
        };
        for p in ["all", "2025-06", "2025-Q3"] {
            let ws = row(Dimension::Workspace, "w", p);
            let reps = row(Dimension::Rep, "r1", p).revenue.mean
                + row(Dimension::Rep, "r2", p).revenue.mean;
            assert!((ws.revenue.mean - reps).abs() < 1e-9, "{p}");
            assert!(ws.revenue.p10 <= ws.revenue.p50 && ws.revenue.p50 <= ws.revenue.p90);
        }
        // Every run closes within 5 days of June 15: all in June. r1 reaches 100 when deal a
        // wins: P = 0.5.
        let r1 = row(Dimension::Rep, "r1", "2025-06");
        assert_eq!(r1.quota, Some(100.0));
        let p = r1.p_quota.unwrap();
        assert!((p - 0.5).abs() < 3.0 * (0.25f64 / 4_000.0).sqrt(), "{p}");
        assert_eq!(row(Dimension::Workspace, "w", "2025-06").quota, Some(100.0));
        assert_eq!(row(Dimension::Rep, "r2", "2025-06").booked, 7.0);
        assert_eq!(row(Dimension::Rep, "r2", "2025-06").quota, None);
        assert_eq!(row(Dimension::Rep, "r2", "all").booked, 0.0);
        assert_eq!(r.workspace_runs.len(), 4_000);
        assert!((row(Dimension::Workspace, "w", "all").revenue.mean - 80.0).abs() < 4.0);
    }
}
