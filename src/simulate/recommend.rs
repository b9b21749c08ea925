//! Recommendations: every applicable scenario run on every open deal with common random
//! numbers, ranked by expected-value gain and by cycle-time reduction, and phrased.
//!
//! The candidates are [`candidates`]: identify a champion (deals without one), resolve the
//! blocker (deals with one), move the current stage along a week sooner, and double the
//! touchpoints (when the mined model has engagement levels). A scenario a deal does not admit
//! ([`SimulateError::ScenarioNotApplicable`]) is left out for that deal. Each deal's baseline is
//! simulated once and paired with every scenario run by run.

use std::sync::Arc;

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use chrono::{DateTime, Utc};

use super::deals::OpenDeal;
use super::engine::{OwnedRuns, SimConfig, SimDeal, Simulator};
use super::error::{Result, SimulateError};
use super::model::ChainModel;
use super::scenario::{Interval, Scenario, ScenarioDelta, paired_delta};
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode, WriteOutcome};
use crate::project::DatasetSchema;

/// The dataset recommendations are written to.
pub const RECOMMENDATIONS: &str = "marts.recommendations";
/// Default runs per deal and scenario: fewer than a forecast's, as the pairing keeps the deltas
/// tight (a 17-point effect is resolved to about ±2.5 points).
pub const DEFAULT_RECOMMENDATION_RUNS: u32 = 1_000;

/// The scenarios tried on every deal.
pub fn candidates() -> Vec<Scenario> {
    vec![
        Scenario::AddChampion,
        Scenario::RemoveBlocker,
        Scenario::AccelerateStage {
            stage: None,
            days: 7.0,
        },
        Scenario::IncreaseTouchpoints { factor: 2.0 },
    ]
}

/// One scenario's effect on one deal.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub deal_id: String,
    pub stage: String,
    pub scenario: Scenario,
    /// What to do, in words: "Identify a champion".
    pub action: String,
    /// The action and its effect: "Identify a champion: +17 pts win rate (+$8,500 expected value)".
    pub text: String,
    pub p_win: f64,
    pub amount: f64,
    pub delta: ScenarioDelta,
    /// The effect helps and its 95 % interval excludes zero (win rate or value up, or days down).
    pub helps: bool,
    /// Rank among the deal's recommendations by expected-value gain (then days saved), from 1.
    pub rank_value: u32,
    /// Rank by days to close saved (then value gained), from 1.
    pub rank_cycle_time: u32,
}

/// What to do, for each scenario kind.
fn action(scenario: &Scenario, deal: &OpenDeal) -> String {
    match scenario {
        Scenario::AddChampion => "Identify a champion".into(),
        Scenario::RemoveBlocker => "Resolve the blocking objection".into(),
        Scenario::AccelerateStage { stage, days } => {
            let stage = stage.as_deref().unwrap_or(&deal.stage);
            if (*days - 7.0).abs() < 1e-9 {
                format!("Move {stage} along a week sooner")
            } else {
                format!("Move {stage} along {days:.0} days sooner")
            }
        }
        Scenario::IncreaseTouchpoints { factor } if (*factor - 2.0).abs() < 1e-9 => {
            "Double the touchpoints".into()
        }
        Scenario::IncreaseTouchpoints { factor } => format!("Touch the deal {factor}× as often"),
        other => format!("Apply {other}"),
    }
}

fn money(v: f64) -> String {
    let whole = v.abs().round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}${out}", if v < 0.0 { "-" } else { "+" })
}

/// "Identify a champion: +17 pts win rate (+$8,500 expected value), -3 days to close".
pub fn phrase(action: &str, delta: &ScenarioDelta) -> String {
    let mut parts = Vec::new();
    let pts = delta.p_win.estimate * 100.0;
    if pts.abs() >= 0.5 {
        let value = delta.expected_value.estimate;
        parts.push(format!(
            "{}{:.0} pts win rate ({} expected value)",
            if pts > 0.0 { "+" } else { "-" },
            pts.abs(),
            money(value)
        ));
    }
    if let Some(days) = delta.expected_days.map(|d| d.estimate)
        && days.abs() >= 0.5
    {
        parts.push(format!(
            "{}{:.0} days to close",
            if days > 0.0 { "+" } else { "-" },
            days.abs()
        ));
    }
    if parts.is_empty() {
        format!("{action}: no measurable effect")
    } else {
        format!("{action}: {}", parts.join(", "))
    }
}

fn helps(d: &ScenarioDelta) -> bool {
    let up = |i: &Interval| i.low > 0.0;
    up(&d.p_win) || up(&d.expected_value) || d.expected_days.is_some_and(|i| i.high < 0.0)
}

/// Runs every applicable candidate on every deal and ranks them per deal: CPU-bound, on the
/// current rayon pool. Deals whose stage the model does not know are left out.
pub fn recommend(
    model: &ChainModel,
    deals: &[OpenDeal],
    scenarios: &[Scenario],
    config: &SimConfig,
) -> Result<Vec<Recommendation>> {
    let sim = Simulator::new(model);
    let kept: Vec<(&OpenDeal, SimDeal)> = deals
        .iter()
        .filter_map(|d| d.sim_deal(model, None).map(|s| (d, s)))
        .collect();
    let base_deals: Vec<SimDeal> = kept.iter().map(|k| k.1).collect();
    let base: Vec<OwnedRuns> = sim.simulate(&base_deals, config, |_, _, r, _| r.to_owned())?;
    let mut out: Vec<Vec<Recommendation>> = vec![Vec::new(); kept.len()];
    for scenario in scenarios {
        // (deal index, modified deal, modified amount)
        let mut applied: Vec<(usize, SimDeal, f64)> = Vec::new();
        for (i, (deal, _)) in kept.iter().enumerate() {
            match scenario.apply(model, deal) {
                Ok(a) => {
                    if let Some(s) = a.deal.sim_deal(model, a.accelerate) {
                        applied.push((i, s, a.deal.amount));
                    }
                }
                Err(SimulateError::ScenarioNotApplicable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let modified: Vec<SimDeal> = applied.iter().map(|a| a.1).collect();
        let deltas = sim.simulate(&modified, config, |j, _, runs, _| {
            let (i, _, amount) = applied[j];
            paired_delta(base[i].view(), runs, kept[i].0.amount, amount)
        })?;
        for ((i, _, _), delta) in applied.iter().zip(deltas) {
            let deal = kept[*i].0;
            let won = base[*i]
                .outcome
                .iter()
                .filter(|o| **o == super::engine::Outcome::Won as u8)
                .count();
            let action = action(scenario, deal);
            out[*i].push(Recommendation {
                deal_id: deal.id.clone(),
                stage: deal.stage.clone(),
                scenario: scenario.clone(),
                text: phrase(&action, &delta),
                action,
                p_win: won as f64 / base[*i].outcome.len().max(1) as f64,
                amount: deal.amount,
                helps: helps(&delta),
                delta,
                rank_value: 0,
                rank_cycle_time: 0,
            });
        }
    }
    let days = |r: &Recommendation| r.delta.expected_days.map_or(0.0, |d| d.estimate);
    for recs in &mut out {
        rank(recs, &days);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Sets both ranks of one deal's recommendations and orders them by value rank.
fn rank(recs: &mut [Recommendation], days: &dyn Fn(&Recommendation) -> f64) {
    let value = |r: &Recommendation| r.delta.expected_value.estimate;
    recs.sort_by(|a, b| {
        days(a)
            .total_cmp(&days(b))
            .then(value(b).total_cmp(&value(a)))
    });
    for (k, r) in recs.iter_mut().enumerate() {
        r.rank_cycle_time = k as u32 + 1;
    }
    recs.sort_by(|a, b| {
        value(b)
            .total_cmp(&value(a))
            .then(days(a).total_cmp(&days(b)))
    });
    for (k, r) in recs.iter_mut().enumerate() {
        r.rank_value = k as u32 + 1;
    }
}

/// A workspace's recommendations.
#[derive(Debug, Clone)]
pub struct WorkspaceRecommendations {
    pub workspace: WorkspaceId,
    pub as_of: DateTime<Utc>,
    pub computed_at: DateTime<Utc>,
    pub config: SimConfig,
    pub recommendations: Vec<Recommendation>,
}

/// Runs [`recommend`] with the [`candidates`] off the async runtime.
pub async fn recommend_workspace(
    workspace: &WorkspaceId,
    model: Arc<ChainModel>,
    deals: Vec<OpenDeal>,
    as_of: DateTime<Utc>,
    config: &SimConfig,
) -> Result<WorkspaceRecommendations> {
    let cfg = config.clone();
    let recommendations =
        tokio::task::spawn_blocking(move || recommend(&model, &deals, &candidates(), &cfg))
            .await
            .map_err(|e| SimulateError::Task {
                reason: e.to_string(),
            })??;
    Ok(WorkspaceRecommendations {
        workspace: workspace.clone(),
        as_of,
        computed_at: Utc::now(),
        config: config.clone(),
        recommendations,
    })
}

impl WorkspaceRecommendations {
    /// The rows of `marts.recommendations`.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let recs = &self.recommendations;
        let n = recs.len();
        let dataset: DatasetRef = RECOMMENDATIONS.parse()?;
        let ts = |t: DateTime<Utc>| -> ArrayRef {
            Arc::new(
                TimestampMicrosecondArray::from(vec![t.timestamp_micros(); n]).with_timezone("UTC"),
            )
        };
        let f64s = |f: &dyn Fn(&Recommendation) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(recs.iter().map(f)))
        };
        let opt = |f: &dyn Fn(&Recommendation) -> Option<f64>| -> ArrayRef {
            Arc::new(Float64Array::from_iter(recs.iter().map(f)))
        };
        let strs = |f: &dyn Fn(&Recommendation) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(recs.iter().map(f)))
        };
        let ints = |f: &dyn Fn(&Recommendation) -> u32| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                recs.iter().map(|r| i64::from(f(r))),
            ))
        };
        let columns: Vec<(&str, ArrayRef, bool)> = vec![
            (
                "workspace_id",
                Arc::new(StringArray::from(vec![self.workspace.as_str(); n])),
                false,
            ),
            ("deal_id", strs(&|r| r.deal_id.clone()), false),
            ("scenario", strs(&|r| r.scenario.to_string()), false),
            ("stage", strs(&|r| r.stage.clone()), true),
            ("action", strs(&|r| r.action.clone()), true),
            ("text", strs(&|r| r.text.clone()), true),
            ("rank_value", ints(&|r| r.rank_value), true),
            ("rank_cycle_time", ints(&|r| r.rank_cycle_time), true),
            (
                "helps",
                Arc::new(BooleanArray::from_iter(recs.iter().map(|r| Some(r.helps)))),
                true,
            ),
            ("amount", f64s(&|r| r.amount), true),
            ("p_win", f64s(&|r| r.p_win), true),
            ("p_win_delta", f64s(&|r| r.delta.p_win.estimate), true),
            ("p_win_delta_low", f64s(&|r| r.delta.p_win.low), true),
            ("p_win_delta_high", f64s(&|r| r.delta.p_win.high), true),
            (
                "days_delta",
                opt(&|r| r.delta.expected_days.map(|d| d.estimate)),
                true,
            ),
            (
                "days_delta_low",
                opt(&|r| r.delta.expected_days.map(|d| d.low)),
                true,
            ),
            (
                "days_delta_high",
                opt(&|r| r.delta.expected_days.map(|d| d.high)),
                true,
            ),
            (
                "value_delta",
                f64s(&|r| r.delta.expected_value.estimate),
                true,
            ),
            (
                "value_delta_low",
                f64s(&|r| r.delta.expected_value.low),
                true,
            ),
            (
                "value_delta_high",
                f64s(&|r| r.delta.expected_value.high),
                true,
            ),
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
            ("as_of", ts(self.as_of), true),
            ("computed_at", ts(self.computed_at), true),
        ];
        super::output::batch_of(dataset, columns)
    }

    /// Replaces the workspace's rows of `marts.recommendations`.
    pub async fn write(&self, lake: &Lake, schema: Option<&DatasetSchema>) -> Result<WriteOutcome> {
        super::output::write_mart(
            lake,
            RECOMMENDATIONS,
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
    use crate::simulate::model::{CLOSED_LOST, CLOSED_WON, Context};

    fn iv(estimate: f64, half: f64) -> Interval {
        Interval {
            estimate,
            low: estimate - half,
            high: estimate + half,
        }
    }

    #[test]
    fn deltas_are_phrased_in_points_money_and_days() {
        let d = ScenarioDelta {
            p_win: iv(0.172, 0.02),
            expected_days: Some(iv(-3.4, 1.0)),
            expected_value: iv(8_500.0, 900.0),
        };
        assert_eq!(
            phrase("Identify a champion", &d),
            "Identify a champion: +17 pts win rate (+$8,500 expected value), -3 days to close"
        );
        assert!(helps(&d));
        let none = ScenarioDelta {
            p_win: iv(0.0, 0.0),
            expected_days: Some(iv(0.1, 0.3)),
            expected_value: iv(0.0, 0.0),
        };
        assert_eq!(
            phrase("Double the touchpoints", &none),
            "Double the touchpoints: no measurable effect"
        );
        assert!(!helps(&none));
    }

    #[test]
    fn applicable_scenarios_are_run_and_ranked_per_deal() {
        // proposal wins 40 % without a champion, 80 % with one; a stay in proposal is 10–20 days.
        let mut b = ChainModel::builder(&["proposal", CLOSED_WON, CLOSED_LOST]).unwrap();
        for (ctx, p) in [("*", 0.5), ("champion=true", 0.8), ("champion=false", 0.4)] {
            b.add_transition(ctx, "proposal", CLOSED_WON, p).unwrap();
            b.add_transition(ctx, "proposal", CLOSED_LOST, 1.0 - p)
                .unwrap();
        }
        b.add_durations("*", "proposal", &[10.0, 20.0]).unwrap();
        let model = b.build().unwrap();
        let mut without = OpenDeal::new("d1", "proposal", 1_000.0, 0.0);
        without.context = Context::from_pairs([("champion", "false")]);
        let mut with = OpenDeal::new("d2", "proposal", 1_000.0, 0.0);
        with.context = Context::from_pairs([("champion", "true")]);
        let cfg = SimConfig {
            runs: 4_000,
            seed: 1,
            ..SimConfig::default()
        };
        let recs = recommend(&model, &[without, with], &candidates(), &cfg).unwrap();
        let of = |id: &str| recs.iter().filter(|r| r.deal_id == id).collect::<Vec<_>>();
        // d1: a champion (+40 pts) and the week sooner; no blocker factor, no engagement levels.
        let d1 = of("d1");
        assert_eq!(d1.len(), 2, "{d1:?}");
        assert_eq!(d1[0].scenario, Scenario::AddChampion);
        assert_eq!(d1[0].rank_value, 1);
        let pts = d1[0].delta.p_win.estimate;
        assert!((pts - 0.4).abs() < 0.03 && d1[0].helps, "{pts}");
        assert!(
            d1[0].text.starts_with("Identify a champion: +4"),
            "{}",
            d1[0].text
        );
        // A week sooner: same outcomes, 7 days less (stays are at least 10 days).
        let faster = d1[1];
        assert_eq!(faster.delta.p_win.estimate, 0.0);
        assert!((faster.delta.expected_days.unwrap().estimate + 7.0).abs() < 1e-3);
        assert_eq!(faster.rank_cycle_time, 1);
        assert!(faster.text.contains("-7 days to close"), "{}", faster.text);
        // d2 already has a champion: only the acceleration.
        let d2 = of("d2");
        assert_eq!(d2.len(), 1);
        assert!(matches!(d2[0].scenario, Scenario::AccelerateStage { .. }));
    }
}
