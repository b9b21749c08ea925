//! The computed fields of every open deal: p_win, `deal_risk` (0–100), `velocity_score`,
//! `engagement_score`, `health_score` and the top contributing risk factors, from the risk
//! model or, without one, from transparent rules ([`super::rules`]).
//!
//! `deal_risk = 100 · (1 − p_win)`, where p_win is the model's, averaged on the log-odds scale
//! with the simulated p_win of `marts.deal_forecasts` when the deal has one (the simulation is
//! not a training feature: closed deals have no simulation as of their snapshots).
//! `health_score = ½·(100 − risk) + ¼·engagement + ¼·(50 + 50·velocity)`.

use serde::Serialize;

use super::data::{Inputs, OPEN_STAGES};
use super::features::{
    FEATURES, Observed, RateBook, Reference, action, current_snapshot, describe, engagement_score,
    features, velocity_score,
};
use super::logistic::{Logistic, sigmoid};
use super::rules;

/// Factors shown per deal.
pub const TOP_FACTORS: usize = 3;
/// A contribution (log-odds) below which a feature counts as a risk factor.
const FACTOR_THRESHOLD: f64 = -0.05;

/// How the scores were computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// The logistic model of this version.
    Model { version: i64 },
    /// Transparent rules, because there is no usable model (the reason).
    Rules { reason: String },
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Model { .. } => "model",
            Method::Rules { .. } => "rules",
        }
    }

    pub fn version(&self) -> Option<i64> {
        match self {
            Method::Model { version } => Some(*version),
            Method::Rules { .. } => None,
        }
    }
}

/// One contributing factor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    pub feature: String,
    pub text: String,
    /// Effect on the log-odds of winning (negative raises the risk); rule points for rules.
    pub impact: f64,
    pub action: String,
}

/// The scores of one open deal.
#[derive(Debug, Clone, PartialEq)]
pub struct DealScore {
    pub deal_id: String,
    pub deal_name: String,
    pub owner_id: Option<String>,
    pub segment: String,
    pub stage: String,
    pub amount: Option<f64>,
    pub days_in_stage: f64,
    /// The method's p_win (before blending with the simulation).
    pub p_win_model: f64,
    pub p_win_simulated: Option<f64>,
    /// The p_win the risk is based on.
    pub p_win: f64,
    pub velocity_score: f64,
    pub engagement_score: f64,
    pub deal_risk: u8,
    pub health_score: u8,
    /// Risk factors, largest first (at most [`TOP_FACTORS`]).
    pub factors: Vec<Factor>,
    /// Every feature's contribution, largest risk first (for `revlake explain`).
    pub all_factors: Vec<Factor>,
}

impl DealScore {
    /// `low` (< 40), `medium` (< 60), `high` (≤ 75) or `critical` (> 75).
    pub fn risk_band(&self) -> &'static str {
        match self.deal_risk {
            0..40 => "low",
            40..60 => "medium",
            60..=75 => "high",
            _ => "critical",
        }
    }
}

/// What scores deals.
#[derive(Debug, Clone, Copy)]
pub enum Scorer<'a> {
    Model(&'a Logistic),
    Rules,
}

fn blend(p_model: f64, simulated: Option<f64>) -> f64 {
    match simulated {
        Some(ps) => {
            let l = |p: f64| {
                let p = p.clamp(1e-4, 1.0 - 1e-4);
                (p / (1.0 - p)).ln()
            };
            sigmoid(0.5 * (l(p_model) + l(ps)))
        }
        None => p_model,
    }
}

/// Contributions with the stage dummies folded into one `stage` factor.
fn model_factors(
    model: &Logistic,
    values: &[f64],
    o: &Observed,
    inputs: &Inputs,
    deal: usize,
) -> Vec<Factor> {
    let c = model.contributions(values);
    let mut out = Vec::with_capacity(FEATURES.len());
    let stage: f64 = c[..5].iter().sum();
    out.push(Factor {
        feature: "stage".into(),
        text: format!("Stage {}", OPEN_STAGES[o.stage]),
        impact: stage,
        action: "Qualify the next step that moves the deal to the next stage".into(),
    });
    for (j, impact) in c.iter().enumerate().skip(5) {
        out.push(Factor {
            feature: FEATURES[j].to_string(),
            text: describe(j, o, inputs, deal),
            impact: *impact,
            action: action(j).to_string(),
        });
    }
    out.sort_by(|a, b| {
        a.impact
            .total_cmp(&b.impact)
            .then(a.feature.cmp(&b.feature))
    });
    out
}

/// Scores one open deal; `None` when it is closed or its stage is not an open stage.
pub fn score_deal(
    inputs: &Inputs,
    reference: &Reference,
    rates: &RateBook,
    scorer: Scorer<'_>,
    deal: usize,
) -> Option<DealScore> {
    let snapshot = current_snapshot(inputs, deal)?;
    let row = features(inputs, reference, rates, &snapshot);
    let o = &row.observed;
    let (p_model, all_factors) = match scorer {
        Scorer::Model(model) => (
            model.predict(&row.values),
            model_factors(model, &row.values, o, inputs, deal),
        ),
        Scorer::Rules => rules::score(inputs, deal, o),
    };
    let d = &inputs.deals[deal];
    let simulated = inputs.simulated[deal];
    let p_win = blend(p_model, simulated);
    let risk = (100.0 * (1.0 - p_win)).round().clamp(0.0, 100.0);
    let velocity = velocity_score(o);
    let engagement = engagement_score(o, inputs.roles[deal].contacts);
    let health =
        (0.5 * (100.0 - risk) + 0.25 * engagement + 0.25 * (50.0 + 50.0 * velocity)).round();
    let factors = all_factors
        .iter()
        .filter(|f| f.impact < FACTOR_THRESHOLD)
        .take(TOP_FACTORS)
        .cloned()
        .collect();
    Some(DealScore {
        deal_id: d.id.clone(),
        deal_name: d.name.clone(),
        owner_id: d.owner_id.clone(),
        segment: d.segment.clone(),
        stage: OPEN_STAGES[snapshot.stage].to_string(),
        amount: d.amount,
        days_in_stage: o.days_in_stage,
        p_win_model: p_model,
        p_win_simulated: simulated,
        p_win,
        velocity_score: velocity,
        engagement_score: engagement,
        deal_risk: risk as u8,
        health_score: health.clamp(0.0, 100.0) as u8,
        factors,
        all_factors,
    })
}

/// Scores every open deal (in deal-id order); the second value counts open deals whose stage
/// is unmapped (not scored).
pub fn score_all(
    inputs: &Inputs,
    reference: &Reference,
    rates: &RateBook,
    scorer: Scorer<'_>,
) -> (Vec<DealScore>, usize) {
    use rayon::prelude::*;
    let open: Vec<usize> = (0..inputs.deals.len())
        .filter(|&i| !inputs.deals[i].is_closed)
        .collect();
    let scores: Vec<DealScore> = open
        .par_iter()
        .filter_map(|&i| score_deal(inputs, reference, rates, scorer, i))
        .collect();
    let skipped = open.len() - scores.len();
    (scores, skipped)
}
