//! Calibration backtest: simulate the deals that were open at a past date with a model mined
//! from the history before it, and score the predicted win probabilities against what happened.
//!
//! ```text
//! staging.deal_stage_history ≤ as_of ──mine_until──▶ ChainModel (nothing after as_of)
//!        └──open_deals_in(as_of)──▶ deals open then (stage, days in it, last touch by then)
//!                                       └──simulate──▶ p_win ──┐
//! staging.deals now: is_closed, is_won ─────────────────────────┴─▶ Brier, log loss, reliability
//! ```
//!
//! Scored are the deals open at `as_of` that have closed since; those still open are counted
//! and left out. Two baselines: the historical win rate (deals closed before `as_of`), and the
//! CRM's own probability for the stage each deal was in (the `probability` column holds only
//! its latest value, so the stage's probability is read off the deals open in that stage now,
//! per source).
//!
//! What still leaks from after `as_of`: contact roles (champion, blocker), amounts, lead
//! source and segment are read as they are now, and deals created later still count toward
//! the workspace's median amount (the `size` factor).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::deals::open_deals_in;
use super::engine::SimConfig;
use super::error::{Result, SimulateError};
use super::facts::{DealFacts, check_workspace, deal_facts};
use super::forecast::forecast_deals;
use super::model::ChainModel;
use super::stats::Calendar;
use crate::lake::{Lake, WorkspaceId};
use crate::mining::{MiningConfig, mine_until};
use crate::project::Project;
use crate::sql::{SessionOptions, SqlSession};

/// Bins of the reliability table.
pub const BINS: usize = 10;

/// One bin of predicted probability, `[low, high)` (the last includes 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReliabilityBin {
    pub low: f64,
    pub high: f64,
    pub count: u64,
    /// Mean predicted probability and observed win rate of the bin's deals (`None` when empty).
    pub mean_predicted: Option<f64>,
    pub observed: Option<f64>,
}

/// Scores of predictions against 0/1 outcomes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    pub n: u64,
    pub brier: f64,
    pub log_loss: f64,
}

/// Brier score and log loss of `predicted` against `outcomes`; probabilities are clipped to
/// `[eps, 1 − eps]` for the log loss.
pub fn scores(predicted: &[f64], outcomes: &[bool], eps: f64) -> Scores {
    let n = predicted.len().min(outcomes.len());
    let (mut brier, mut log_loss) = (0.0, 0.0);
    for (p, y) in predicted.iter().zip(outcomes) {
        let y = f64::from(u8::from(*y));
        brier += (p - y).powi(2);
        let q = p.clamp(eps, 1.0 - eps);
        log_loss -= y * q.ln() + (1.0 - y) * (1.0 - q).ln();
    }
    let d = n.max(1) as f64;
    Scores {
        n: n as u64,
        brier: brier / d,
        log_loss: log_loss / d,
    }
}

/// The reliability table: [`BINS`] equal-width bins of predicted probability.
pub fn reliability(predicted: &[f64], outcomes: &[bool]) -> Vec<ReliabilityBin> {
    let mut sum = [0.0f64; BINS];
    let mut won = [0u64; BINS];
    let mut count = [0u64; BINS];
    for (p, y) in predicted.iter().zip(outcomes) {
        let b = ((p * BINS as f64).floor().max(0.0) as usize).min(BINS - 1);
        sum[b] += p;
        won[b] += u64::from(*y);
        count[b] += 1;
    }
    (0..BINS)
        .map(|b| ReliabilityBin {
            low: b as f64 / BINS as f64,
            high: (b + 1) as f64 / BINS as f64,
            count: count[b],
            mean_predicted: (count[b] > 0).then(|| sum[b] / count[b] as f64),
            observed: (count[b] > 0).then(|| won[b] as f64 / count[b] as f64),
        })
        .collect()
}

/// One scored deal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BacktestDeal {
    pub deal_id: String,
    /// Its stage at `as_of` and days in it.
    pub stage: String,
    pub days_in_stage: f64,
    pub p_win: f64,
    /// The CRM's probability for that stage (see the module docs).
    pub crm_probability: Option<f64>,
    pub won: bool,
}

/// What a backtest gives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backtest {
    pub workspace: String,
    /// RFC 3339.
    pub as_of: String,
    pub runs: u32,
    pub seed: u64,
    /// Deals open at `as_of`, of them closed since (scored) and still open (left out), and
    /// those the model could not simulate (a stage it never saw before `as_of`).
    pub open_at_as_of: u64,
    pub still_open: u64,
    pub not_simulated: u64,
    /// Deals closed before `as_of` and their win rate: the base-rate baseline.
    pub closed_before: u64,
    pub base_rate: f64,
    /// Transitions mined before `as_of`, and whether the model is low-confidence.
    pub mined_transitions: u64,
    pub low_confidence: bool,
    pub model: Scores,
    pub baseline: Scores,
    /// The CRM probability on the deals it covers, and the model on the same deals.
    pub crm: Option<Scores>,
    pub model_on_crm_deals: Option<Scores>,
    pub reliability: Vec<ReliabilityBin>,
    pub deals: Vec<BacktestDeal>,
    /// What the backtest still reads from after `as_of`.
    pub leakage: &'static str,
}

/// See the module docs.
pub const LEAKAGE: &str = "the model is mined from stage changes before as_of only; contact roles (champion, blocker), amounts, lead source and segment are read as they are now, and deals created after as_of still count toward the median amount of the size factor";

/// The CRM's probability per (source, stage) and per stage, from the deals open now.
fn stage_probabilities(
    facts: &HashMap<String, DealFacts>,
) -> (HashMap<(String, String), f64>, HashMap<String, f64>) {
    let mut by_source: HashMap<(String, String), (f64, u64)> = HashMap::new();
    let mut by_stage: HashMap<String, (f64, u64)> = HashMap::new();
    for f in facts.values().filter(|f| !f.is_closed) {
        let (Some(stage), Some(p)) = (&f.stage, f.probability) else {
            continue;
        };
        let e = by_stage.entry(stage.clone()).or_default();
        e.0 += p;
        e.1 += 1;
        if let Some(source) = &f.source {
            let e = by_source
                .entry((source.clone(), stage.clone()))
                .or_default();
            e.0 += p;
            e.1 += 1;
        }
    }
    let mean = |(s, n): (f64, u64)| s / n as f64;
    (
        by_source.into_iter().map(|(k, v)| (k, mean(v))).collect(),
        by_stage.into_iter().map(|(k, v)| (k, mean(v))).collect(),
    )
}

/// Runs the backtest of `workspace` as of `as_of`.
pub async fn backtest(
    lake: &Lake,
    project: &Project,
    mining: &MiningConfig,
    workspace: &WorkspaceId,
    as_of: DateTime<Utc>,
    config: &SimConfig,
) -> Result<Backtest> {
    check_workspace(lake, workspace).await?;
    let nothing = |reason: String| SimulateError::NothingToBacktest {
        workspace: workspace.to_string(),
        as_of: as_of.to_rfc3339(),
        reason,
    };
    let mined = mine_until(lake, project, mining, workspace, as_of)
        .await
        .map_err(|source| SimulateError::Mining {
            workspace: workspace.to_string(),
            as_of: as_of.to_rfc3339(),
            source: Box::new(source),
        })?;
    if mined.matrix.is_empty() {
        return Err(nothing(
            "no stage changes before it to mine (pick a later date)".into(),
        ));
    }
    let model = ChainModel::from_mining(&mined)?;
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: Some(workspace.clone()),
            ..SessionOptions::default()
        },
    )
    .await?;
    let (open, _) = open_deals_in(&session, Some(as_of)).await?;
    let facts = deal_facts(&session).await?;
    drop(session);
    let open_at_as_of = open.len() as u64;
    let closed_now = |id: &str| facts.get(id).filter(|f| f.is_closed);
    let scored: Vec<_> = open
        .into_iter()
        .filter(|d| closed_now(&d.id).is_some())
        .collect();
    let still_open = open_at_as_of - scored.len() as u64;
    if scored.is_empty() {
        return Err(nothing(format!(
            "of the {open_at_as_of} deals open then, none has closed since (pick an earlier date)"
        )));
    }
    let before: Vec<&DealFacts> = facts
        .values()
        .filter(|f| f.is_closed && f.closed_at.is_some_and(|t| t <= as_of))
        .collect();
    if before.is_empty() {
        return Err(nothing(
            "no deal had closed by then, so there is no history to learn from (pick a later date)"
                .into(),
        ));
    }
    let base_rate = before.iter().filter(|f| f.is_won).count() as f64 / before.len() as f64;

    let calendar = Calendar::new(as_of.date_naive(), 1);
    let cfg = config.clone();
    let model = std::sync::Arc::new(model);
    let (forecasts, skipped) = {
        let (model, scored) = (model.clone(), scored.clone());
        tokio::task::spawn_blocking(move || forecast_deals(&model, &scored, &calendar, &cfg))
            .await
            .map_err(|e| SimulateError::Task {
                reason: e.to_string(),
            })??
    };
    let (by_source, by_stage) = stage_probabilities(&facts);
    let deals: Vec<BacktestDeal> = forecasts
        .iter()
        .map(|f| {
            let facts = &facts[&f.deal_id];
            let crm = facts
                .source
                .as_ref()
                .and_then(|s| by_source.get(&(s.clone(), f.stage.clone())))
                .or_else(|| by_stage.get(&f.stage))
                .copied();
            BacktestDeal {
                deal_id: f.deal_id.clone(),
                stage: f.stage.clone(),
                days_in_stage: f.days_in_stage,
                p_win: f.stats.p_win,
                crm_probability: crm,
                won: facts.is_won,
            }
        })
        .collect();
    let eps = 0.5 / f64::from(config.runs.max(1));
    let p: Vec<f64> = deals.iter().map(|d| d.p_win).collect();
    let y: Vec<bool> = deals.iter().map(|d| d.won).collect();
    let covered: Vec<&BacktestDeal> = deals
        .iter()
        .filter(|d| d.crm_probability.is_some())
        .collect();
    let (crm, model_on_crm_deals) = if covered.is_empty() {
        (None, None)
    } else {
        let cy: Vec<bool> = covered.iter().map(|d| d.won).collect();
        let cp: Vec<f64> = covered.iter().filter_map(|d| d.crm_probability).collect();
        let mp: Vec<f64> = covered.iter().map(|d| d.p_win).collect();
        (Some(scores(&cp, &cy, eps)), Some(scores(&mp, &cy, eps)))
    };
    Ok(Backtest {
        workspace: workspace.to_string(),
        as_of: as_of.to_rfc3339(),
        runs: config.runs,
        seed: config.seed,
        open_at_as_of,
        still_open,
        not_simulated: skipped.len() as u64,
        closed_before: before.len() as u64,
        base_rate,
        mined_transitions: mined.summary.transitions,
        low_confidence: model.low_confidence(),
        model: scores(&p, &y, eps),
        baseline: scores(&vec![base_rate; y.len()], &y, eps),
        crm,
        model_on_crm_deals,
        reliability: reliability(&p, &y),
        deals,
        leakage: LEAKAGE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brier_and_log_loss_of_a_tiny_vector() {
        let p = [0.9, 0.2, 0.6, 0.0];
        let y = [true, false, false, false];
        let s = scores(&p, &y, 0.01);
        // (0.01 + 0.04 + 0.36 + 0) / 4.
        assert!((s.brier - 0.1025).abs() < 1e-12, "{s:?}");
        // −(ln 0.9 + ln 0.8 + ln 0.4 + ln 0.99) / 4.
        let exact = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.99f64.ln()) / 4.0;
        assert!((s.log_loss - exact).abs() < 1e-12);
        assert_eq!(s.n, 4);
        // The base rate 1/4 for all: (0.5625 + 3 · 0.0625) / 4.
        let base = scores(&[0.25; 4], &y, 0.01);
        assert!((base.brier - 0.1875).abs() < 1e-12);
    }

    #[test]
    fn reliability_bins_count_predictions_and_outcomes() {
        let p = [0.05, 0.08, 0.55, 0.58, 0.95, 1.0];
        let y = [false, true, true, true, true, false];
        let r = reliability(&p, &y);
        assert_eq!(r.len(), BINS);
        assert_eq!(r[0].count, 2);
        assert!((r[0].mean_predicted.unwrap() - 0.065).abs() < 1e-12);
        assert_eq!(r[0].observed, Some(0.5));
        assert_eq!(r[5].count, 2);
        assert_eq!(r[5].observed, Some(1.0));
        // 1.0 falls in the last bin with 0.95.
        assert_eq!(r[9].count, 2);
        assert!((r[9].mean_predicted.unwrap() - 0.975).abs() < 1e-12);
        assert_eq!(r[3].count, 0);
        assert_eq!(r[3].observed, None);
    }
}
