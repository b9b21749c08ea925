//! What-if scenarios on one deal, simulated with common random numbers.
//!
//! A scenario changes the deal as the model sees it: its context (a champion identified, the
//! blocker resolved, more recent engagement, any factor set), its time in a stage, or its
//! amount. Baseline and modified deal keep the same stream key, so run `r` of both draws the
//! same numbers at every step; the paired per-run differences then carry only the effect of the
//! change, and their interval is far tighter than that of two independent simulations.
//!
//! ```text
//! add_champion            remove_blocker           accelerate_stage[:STAGE=]DAYS
//! increase_touchpoints[:K]  change_amount:AMOUNT|+P%|-P%|xR  set_context:F=L[,F=L…]
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::deals::{OpenDeal, engagement_bands, open_deals_in};
use super::engine::{Outcome, RunOutcomes, SimConfig, Simulator};
use super::error::{Result, SimulateError};
use super::forecast::{DealForecast, ForecastOptions, no_such_deal};
use super::model::ChainModel;
use super::stats::{Calendar, DealStats, StatsScratch, Z95};
use crate::lake::{Lake, WorkspaceId};
use crate::sql::{SessionOptions, SqlSession};

/// How a scenario changes the amount.
#[derive(Debug, Clone, PartialEq)]
pub enum AmountChange {
    /// The amount becomes this.
    To(f64),
    /// The amount is multiplied by this.
    Ratio(f64),
}

/// A what-if change to one deal.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// A champion is identified: context `champion=true`.
    AddChampion,
    /// The blocking objection is resolved: context `blocker=false`.
    RemoveBlocker,
    /// Every stay in `stage` (default: the deal's current stage) is `days` shorter.
    AccelerateStage {
        stage: Option<String>,
        days: f64,
    },
    /// Engagement × `factor`: the days since the last touch divided by it, bucketed again into
    /// the model's engagement-recency levels.
    IncreaseTouchpoints {
        factor: f64,
    },
    ChangeAmount(AmountChange),
    /// Context factors set to levels.
    SetContext(Vec<(String, String)>),
}

impl FromStr for Scenario {
    type Err = SimulateError;

    /// `TYPE[:PARAM]`, see the module docs.
    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason: &str| SimulateError::BadScenario {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (kind, param) = match input.trim().split_once(':') {
            Some((k, p)) => (k.trim(), Some(p.trim())),
            None => (input.trim(), None),
        };
        let number = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let days = |s: &str| {
            let s = s.trim().to_ascii_lowercase();
            if let Some(w) = s.strip_suffix('w') {
                number(w).map(|w| w * 7.0)
            } else {
                number(s.strip_suffix('d').unwrap_or(&s))
            }
        };
        let no_param = |s: Scenario| match param {
            None | Some("") => Ok(s),
            Some(_) => Err(bad("this scenario takes no parameter")),
        };
        match kind {
            "add_champion" => no_param(Scenario::AddChampion),
            "remove_blocker" => no_param(Scenario::RemoveBlocker),
            "accelerate_stage" => {
                let p = param.ok_or_else(|| {
                    bad("give the days, e.g. accelerate_stage:7 or accelerate_stage:demo=1w")
                })?;
                let (stage, d) = match p.split_once('=') {
                    Some((s, d)) => (Some(s.trim().to_string()), d),
                    None => (None, p),
                };
                let d = days(d)
                    .filter(|d| *d > 0.0)
                    .ok_or_else(|| bad("the days must be a positive number (7, 7d or 1w)"))?;
                Ok(Scenario::AccelerateStage { stage, days: d })
            }
            "increase_touchpoints" => {
                let k = match param {
                    None | Some("") => 2.0,
                    Some(p) => number(p.trim_start_matches(['x', '×']))
                        .filter(|k| *k > 0.0)
                        .ok_or_else(|| {
                            bad("the factor must be a positive number, e.g. increase_touchpoints:2")
                        })?,
                };
                Ok(Scenario::IncreaseTouchpoints { factor: k })
            }
            "change_amount" => {
                let p = param.ok_or_else(|| {
                    bad("give the amount: change_amount:50000, :+20%, :-10% or :x1.5")
                })?;
                let change = if let Some(pct) = p.strip_suffix('%') {
                    number(pct).map(|v| AmountChange::Ratio(1.0 + v / 100.0))
                } else if let Some(r) = p.strip_prefix(['x', '×']) {
                    number(r).map(AmountChange::Ratio)
                } else {
                    number(p).map(AmountChange::To)
                };
                match change {
                    Some(AmountChange::To(v) | AmountChange::Ratio(v)) if v < 0.0 => {
                        Err(bad("the amount cannot become negative"))
                    }
                    Some(c) => Ok(Scenario::ChangeAmount(c)),
                    None => Err(bad("the amount must be a number, a percentage or xRATIO")),
                }
            }
            "set_context" => {
                let p = param.ok_or_else(|| bad("give factor=level pairs, e.g. set_context:champion=true,lead_source=referral"))?;
                let mut pairs = Vec::new();
                for part in p
                    .split([',', '|', ';'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    let (f, l) = part
                        .split_once('=')
                        .filter(|(f, l)| !f.trim().is_empty() && !l.trim().is_empty())
                        .ok_or_else(|| bad("each override is factor=level"))?;
                    pairs.push((f.trim().to_ascii_lowercase(), l.trim().to_string()));
                }
                if pairs.is_empty() {
                    return Err(bad("give at least one factor=level"));
                }
                Ok(Scenario::SetContext(pairs))
            }
            _ => Err(bad(
                "unknown type; use add_champion, remove_blocker, accelerate_stage, increase_touchpoints, change_amount or set_context",
            )),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::AddChampion => f.write_str("add_champion"),
            Scenario::RemoveBlocker => f.write_str("remove_blocker"),
            Scenario::AccelerateStage {
                stage: Some(s),
                days,
            } => {
                write!(f, "accelerate_stage:{s}={days}")
            }
            Scenario::AccelerateStage { stage: None, days } => write!(f, "accelerate_stage:{days}"),
            Scenario::IncreaseTouchpoints { factor } => write!(f, "increase_touchpoints:{factor}"),
            Scenario::ChangeAmount(AmountChange::To(v)) => write!(f, "change_amount:{v}"),
            Scenario::ChangeAmount(AmountChange::Ratio(r)) => write!(f, "change_amount:x{r}"),
            Scenario::SetContext(pairs) => {
                f.write_str("set_context:")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                Ok(())
            }
        }
    }
}

/// A deal as a scenario leaves it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedScenario {
    pub deal: OpenDeal,
    /// `(stage code, days)` shorter stays.
    pub accelerate: Option<(u16, f32)>,
}

impl Scenario {
    /// The deal as this scenario changes it under `model`; refuses changes that cannot apply
    /// (the model has no such factor, the deal already has a champion, …).
    pub fn apply(&self, model: &ChainModel, deal: &OpenDeal) -> Result<AppliedScenario> {
        let not = |reason: String| SimulateError::ScenarioNotApplicable {
            scenario: self.to_string(),
            deal: deal.id.clone(),
            reason,
        };
        let mut out = AppliedScenario {
            deal: deal.clone(),
            accelerate: None,
        };
        let need_level = |factor: &str, level: &str| {
            if model.factor_levels(factor).contains(level) {
                Ok(())
            } else {
                Err(not(format!(
                    "the mined model has no `{factor}={level}` context (its factors: {})",
                    list(model.factors())
                )))
            }
        };
        match self {
            Scenario::AddChampion => {
                need_level("champion", "true")?;
                if deal.context.level("champion") == Some("true") {
                    return Err(not("the deal already has a champion".into()));
                }
                out.deal.context.set("champion", "true");
            }
            Scenario::RemoveBlocker => {
                need_level("blocker", "false")?;
                if deal.context.level("blocker") == Some("false") {
                    return Err(not("the deal has no unresolved blocker".into()));
                }
                out.deal.context.set("blocker", "false");
            }
            Scenario::AccelerateStage { stage, days } => {
                let name = stage.as_deref().unwrap_or(&deal.stage);
                let code = model
                    .stage_code(name)
                    .filter(|c| !model.is_absorbing(*c))
                    .ok_or_else(|| not(format!("`{name}` is not an open stage of the model")))?;
                out.accelerate = Some((code, *days as f32));
            }
            Scenario::IncreaseTouchpoints { factor } => {
                if engagement_bands(model).is_none() {
                    return Err(not(
                        "the mined model has no engagement-recency factor with day-band levels"
                            .into(),
                    ));
                }
                let days = deal
                    .days_since_touch
                    .ok_or_else(|| not("the deal has no recorded activity".into()))?;
                out.deal.days_since_touch = Some(days / factor);
            }
            Scenario::ChangeAmount(AmountChange::To(v)) => out.deal.amount = *v,
            Scenario::ChangeAmount(AmountChange::Ratio(r)) => out.deal.amount *= r,
            Scenario::SetContext(pairs) => {
                let factors = model.factors();
                let engagement = engagement_bands(model).map(|(f, _)| f);
                for (f, l) in pairs {
                    if !factors.contains(f) {
                        return Err(not(format!(
                            "the mined model has no factor `{f}` (its factors: {})",
                            list(factors)
                        )));
                    }
                    if engagement.as_deref() == Some(f.as_str()) {
                        // An explicit level wins over the one derived from the last touch.
                        out.deal.days_since_touch = None;
                    }
                    out.deal.context.set(f, l);
                }
            }
        }
        Ok(out)
    }
}

fn list(items: std::collections::BTreeSet<String>) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// An estimate with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// Modified minus baseline, from the paired runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioDelta {
    pub p_win: Interval,
    /// Over the runs that closed in both; `None` if none did.
    pub expected_days: Option<Interval>,
    pub expected_value: Interval,
}

/// A scenario's baseline, modified forecast and paired delta.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioComparison {
    pub scenario: Scenario,
    pub baseline: DealForecast,
    pub modified: DealForecast,
    pub delta: ScenarioDelta,
}

/// Mean and 95 % normal interval of paired differences.
fn paired(diffs: impl Iterator<Item = f64>) -> Option<Interval> {
    let (mut n, mut sum, mut sq) = (0usize, 0.0f64, 0.0f64);
    for d in diffs {
        n += 1;
        sum += d;
        sq += d * d;
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    let var = if n > 1 {
        ((sq - sum * mean) / (n - 1) as f64).max(0.0)
    } else {
        0.0
    };
    let half = Z95 * (var / n as f64).sqrt();
    Some(Interval {
        estimate: mean,
        low: mean - half,
        high: mean + half,
    })
}

/// The paired delta of two simulations of one deal with the same counters.
pub fn paired_delta(
    base: RunOutcomes<'_>,
    modified: RunOutcomes<'_>,
    base_amount: f64,
    modified_amount: f64,
) -> ScenarioDelta {
    let n = base.len().min(modified.len());
    let won =
        |r: &RunOutcomes<'_>, i: usize| f64::from(u8::from(r.outcome[i] == Outcome::Won as u8));
    let closed = |r: &RunOutcomes<'_>, i: usize| r.outcome[i] != Outcome::Open as u8;
    let zero = Interval {
        estimate: 0.0,
        low: 0.0,
        high: 0.0,
    };
    ScenarioDelta {
        p_win: paired((0..n).map(|i| won(&modified, i) - won(&base, i))).unwrap_or(zero),
        expected_days: paired(
            (0..n)
                .filter(|&i| closed(&base, i) && closed(&modified, i))
                .map(|i| f64::from(modified.days[i]) - f64::from(base.days[i])),
        ),
        expected_value: paired(
            (0..n).map(|i| modified_amount * won(&modified, i) - base_amount * won(&base, i)),
        )
        .unwrap_or(zero),
    }
}

/// Simulates `deal` as it is and as `scenario` changes it, with common random numbers.
pub fn compare(
    model: &ChainModel,
    deal: &OpenDeal,
    scenario: &Scenario,
    calendar: &Calendar,
    config: &SimConfig,
) -> Result<ScenarioComparison> {
    let not_open = || SimulateError::ScenarioNotApplicable {
        scenario: scenario.to_string(),
        deal: deal.id.clone(),
        reason: format!(
            "stage `{}` is not an open stage of the mined model",
            deal.stage
        ),
    };
    let base = deal.sim_deal(model, None).ok_or_else(not_open)?;
    let applied = scenario.apply(model, deal)?;
    let modified = applied
        .deal
        .sim_deal(model, applied.accelerate)
        .ok_or_else(not_open)?;
    let sim = Simulator::new(model);
    let runs = sim.simulate(&[base, modified], config, |_, _, r, _| r.to_owned())?;
    let mut spare = StatsScratch::default();
    let forecast = |d: &OpenDeal, ctx: u32, r: RunOutcomes<'_>, spare: &mut StatsScratch| {
        let stats = DealStats::from_runs(r, calendar, spare);
        DealForecast::new(d, &model.contexts()[ctx as usize].key, stats)
    };
    Ok(ScenarioComparison {
        scenario: scenario.clone(),
        baseline: forecast(deal, base.context, runs[0].view(), &mut spare),
        modified: forecast(&applied.deal, modified.context, runs[1].view(), &mut spare),
        delta: paired_delta(
            runs[0].view(),
            runs[1].view(),
            deal.amount,
            applied.deal.amount,
        ),
    })
}

/// Loads the workspace's model and deal `deal_id` and runs [`compare`]; returns the as-of time
/// used too.
pub async fn simulate_scenario(
    lake: &Lake,
    workspace: &WorkspaceId,
    deal_id: &str,
    scenario: &Scenario,
    options: &ForecastOptions,
) -> Result<(ScenarioComparison, DateTime<Utc>)> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: Some(workspace.clone()),
            ..SessionOptions::default()
        },
    )
    .await?;
    let model = Arc::new(ChainModel::from_session(&session, workspace).await?);
    let (deals, as_of) = open_deals_in(&session, options.as_of).await?;
    let deal = deals
        .into_iter()
        .find(|d| d.id == deal_id)
        .ok_or_else(|| no_such_deal(deal_id, workspace))?;
    let calendar = Calendar::new(as_of.date_naive(), options.months);
    let (config, scenario) = (options.config.clone(), scenario.clone());
    let comparison =
        tokio::task::spawn_blocking(move || compare(&model, &deal, &scenario, &calendar, &config))
            .await
            .map_err(|e| SimulateError::Task {
                reason: e.to_string(),
            })??;
    Ok((comparison, as_of))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_and_print() {
        let cases = [
            ("add_champion", Scenario::AddChampion),
            ("remove_blocker", Scenario::RemoveBlocker),
            (
                "accelerate_stage:demo=1w",
                Scenario::AccelerateStage {
                    stage: Some("demo".into()),
                    days: 7.0,
                },
            ),
            (
                "accelerate_stage:10d",
                Scenario::AccelerateStage {
                    stage: None,
                    days: 10.0,
                },
            ),
            (
                "increase_touchpoints",
                Scenario::IncreaseTouchpoints { factor: 2.0 },
            ),
            (
                "increase_touchpoints:x3",
                Scenario::IncreaseTouchpoints { factor: 3.0 },
            ),
            (
                "change_amount:50000",
                Scenario::ChangeAmount(AmountChange::To(50_000.0)),
            ),
            (
                "change_amount:+20%",
                Scenario::ChangeAmount(AmountChange::Ratio(1.2)),
            ),
            (
                "change_amount:x0.5",
                Scenario::ChangeAmount(AmountChange::Ratio(0.5)),
            ),
            (
                "set_context:Champion=true, lead_source=referral",
                Scenario::SetContext(vec![
                    ("champion".into(), "true".into()),
                    ("lead_source".into(), "referral".into()),
                ]),
            ),
        ];
        for (text, expected) in cases {
            let parsed: Scenario = text.parse().unwrap();
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string().parse::<Scenario>().unwrap(), expected);
        }
        for bad in [
            "add_champion:x",
            "accelerate_stage",
            "accelerate_stage:-3",
            "increase_touchpoints:0",
            "change_amount:-200%",
            "change_amount:lots",
            "set_context:champion",
            "set_context:",
            "teleport",
        ] {
            let err = bad.parse::<Scenario>().unwrap_err();
            assert!(err.is_user_error(), "{bad}: {err}");
        }
    }

    #[test]
    fn paired_deltas_of_identical_runs_are_exactly_zero() {
        let days = [3.0f32, 4.0, 5.0];
        let outcome = [1u8, 0, 1];
        let steps = [1u16, 1, 1];
        let r = RunOutcomes {
            days: &days,
            outcome: &outcome,
            steps: &steps,
        };
        let d = paired_delta(r, r, 100.0, 100.0);
        assert_eq!(
            (d.p_win.estimate, d.p_win.low, d.p_win.high),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(d.expected_days.unwrap().estimate, 0.0);
        // Same outcomes, amount doubled: value +100 per won run, 2 of 3.
        let d = paired_delta(r, r, 100.0, 200.0);
        assert!((d.expected_value.estimate - 200.0 / 3.0).abs() < 1e-9);
        assert!(d.expected_value.low < d.expected_value.estimate);
    }
}
