//! `revlake score --bench N`: the CPU part of scoring timed on N synthetic deals (features,
//! training on the closed ones, scoring the open ones, trends and alerts), without the lake.

use std::time::Instant;

use super::alerts::{AlertThresholds, high_risk_deals, rep_risk};
use super::data::{DAY, Deal, Inputs, OPEN_STAGES, Roles, Stay};
use super::error::Result;
use super::features::{RateBook, Reference};
use super::model::{TrainOptions, Training, train};
use super::score::{Scorer, score_all};
use super::trends::{anomalies, daily_movements, facts, health_index};

/// Seconds per phase.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchTimings {
    pub deals: usize,
    pub open: usize,
    pub training_rows: usize,
    pub build: f64,
    pub references: f64,
    pub train: f64,
    pub score: f64,
    pub alerts: f64,
    pub auc: Option<f64>,
}

/// A small deterministic generator (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` synthetic deals over two years: a third open, a champion and a blocker moving the odds
/// of every stage advance.
pub fn synthetic(n: usize, seed: u64) -> Inputs {
    let mut rng = Mix(seed);
    let end = 1_767_139_200.0; // 2025-12-31
    let start = end - 730.0 * DAY;
    let segments = ["smb", "mid_market", "enterprise"];
    let sources = ["Inbound", "Outbound", "Partner", "Referral"];
    let mut deals = Vec::with_capacity(n);
    let mut stays = Vec::with_capacity(n);
    let mut roles = Vec::with_capacity(n);
    let mut activities = Vec::with_capacity(n);
    let mut closed_moves = Vec::with_capacity(n);
    for i in 0..n {
        // A third created in the last 40 days (still open at the end, like a live pipeline),
        // the rest over the two years before (mostly closed: the training history).
        let created = if i % 3 == 2 {
            end - rng.next() * 40.0 * DAY
        } else {
            start + rng.next() * 680.0 * DAY
        };
        let champion = rng.next() < 0.45;
        let blocker = rng.next() < 0.25;
        let mult = if champion { 1.15 } else { 1.0 } * if blocker { 0.8 } else { 1.0 };
        let mut t = created;
        let mut deal_stays = vec![Stay {
            stage: 0,
            entered: t,
        }];
        let mut outcome = None;
        for stage in 0..6 {
            t += (5.0 + 20.0 * rng.next()) * DAY / mult;
            if t > end {
                break;
            }
            if rng.next() > (0.75 * mult).min(0.96) {
                outcome = Some((false, t));
                break;
            }
            if stage == 5 {
                outcome = Some((true, t));
            } else {
                deal_stays.push(Stay {
                    stage: stage + 1,
                    entered: t,
                });
            }
        }
        let last_stage = deal_stays.last().map_or(0, |s| s.stage);
        let stage = match outcome {
            Some((true, _)) => "closed_won",
            Some((false, _)) => "closed_lost",
            None => OPEN_STAGES[last_stage],
        };
        let mut d = Deal::new(&format!("deal-{i:08}"), stage, created);
        d.segment = segments[(i / 7) % 3].to_string();
        d.lead_source = sources[(i / 3) % 4].to_string();
        d.owner_id = Some(format!("rep-{}", i % 50));
        d.amount = Some(5_000.0 + 100_000.0 * rng.next());
        d.closed_at = outcome.map(|o| o.1);
        let until = outcome.map_or(end, |o| o.1);
        let acts: Vec<f64> = (0..(2.0 + 6.0 * rng.next() * mult) as usize)
            .map(|_| created + rng.next() * (until - created))
            .collect();
        let mut acts = acts;
        acts.sort_by(f64::total_cmp);
        activities.push(acts);
        roles.push(Roles {
            known: true,
            champion,
            blocker,
            contacts: 1 + (rng.next() * 3.0) as u32,
        });
        closed_moves.push(d.closed_at);
        stays.push(deal_stays);
        deals.push(d);
    }
    let mut inputs = Inputs::from_deals("bench", deals);
    inputs.stays = stays;
    inputs.roles = roles;
    inputs.activities = activities;
    inputs.closed_moves = closed_moves;
    inputs.set_as_of_from_data();
    inputs
}

/// Times the phases on `n` synthetic deals.
pub fn run(n: usize, seed: u64) -> Result<BenchTimings> {
    let t = Instant::now();
    let inputs = synthetic(n, seed);
    let build = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let reference = Reference::build(&inputs);
    let rates = RateBook::build(&inputs);
    let references = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let training = train(
        &inputs,
        &rates,
        &TrainOptions::default(),
        chrono::Utc::now(),
    )?;
    let train_secs = t.elapsed().as_secs_f64();
    let (model, rows) = match &training {
        Training::Model(m, set) => (Some(m.as_ref().clone()), set.rows.len()),
        Training::TooFew { .. } => (None, 0),
    };
    let t = Instant::now();
    let scorer = model
        .as_ref()
        .map_or(Scorer::Rules, |m| Scorer::Model(&m.logistic));
    let (scores, _) = score_all(&inputs, &reference, &rates, scorer);
    let score = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let thresholds = AlertThresholds::default();
    let f = facts(&inputs);
    let _ = health_index(&f, inputs.as_of);
    let _ = anomalies(&daily_movements(&f, inputs.as_of, 84), 7);
    let _ = high_risk_deals(&scores, &inputs.users, &thresholds);
    let _ = rep_risk(&scores, &inputs.users, &thresholds);
    let alerts = t.elapsed().as_secs_f64();
    Ok(BenchTimings {
        deals: n,
        open: scores.len(),
        training_rows: rows,
        build,
        references,
        train: train_secs,
        score,
        alerts,
        auc: model.map(|m| m.metrics.auc),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn synthetic_deals_train_a_model_that_beats_chance() {
        let t = super::run(3_000, 1).unwrap();
        // About a third of the deals are open and scored.
        assert!(t.open > 3_000 / 5, "{t:?}");
        assert!(t.auc.is_some_and(|a| a > 0.6), "{t:?}");
    }
}
