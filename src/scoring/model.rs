//! The risk model: training on closed deals with a time-based holdout, its metrics, and its
//! versions in `marts.risk_models`.
//!
//! ```text
//! closed deals ─▶ one snapshot per open-stage stay (its middle) ─▶ features as known then
//!   closed before the cutoff ─▶ train ─▶ Logistic (IRLS, L2, standardized)
//!   closed from the cutoff on ─▶ holdout ─▶ ROC-AUC, log-loss, calibration deciles
//! ```
//!
//! The cutoff is the close time that leaves the latest `holdout_share` of closed deals for the
//! holdout. A new model replaces the active one only when it is at least as good on the new
//! holdout (the old model is scored on the same rows), unless forced.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::data::Inputs;
use super::error::{Result, ScoringError};
use super::features::{FEATURES, P, RateBook, Reference, closed_snapshots, features};
use super::logistic::{FitOptions, Logistic};
use super::metrics::{CalibrationBin, calibration_deciles, log_loss, roc_auc};

/// The mart of model versions.
pub const RISK_MODELS: &str = "marts.risk_models";

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// L2 strength on the standardized coefficients.
    pub l2: f64,
    /// Share of the closed deals, the latest by close time, held out.
    pub holdout_share: f64,
    /// Closed deals below which the rule-based scoring is used instead of a model.
    pub min_closed: usize,
    /// Won and lost deals each needed in the training part and in the holdout.
    pub min_per_class: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            l2: 1.0,
            holdout_share: 0.25,
            min_closed: 100,
            min_per_class: 10,
        }
    }
}

impl TrainOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(ScoringError::InvalidConfig { reason });
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return bad(format!("the L2 strength must be ≥ 0, got {}", self.l2));
        }
        if !(self.holdout_share > 0.0 && self.holdout_share < 1.0) {
            return bad(format!(
                "the holdout share must be in (0, 1), got {}",
                self.holdout_share
            ));
        }
        Ok(())
    }
}

/// The snapshot rows of the closed deals, split in time.
#[derive(Debug, Clone, Default)]
pub struct TrainingSet {
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<bool>,
    /// The deal and open stage of each row.
    pub deals: Vec<usize>,
    pub stages: Vec<usize>,
    pub is_test: Vec<bool>,
    /// Close time from which deals are held out (epoch seconds).
    pub cutoff: f64,
    pub closed_deals: usize,
    pub won_deals: usize,
}

impl TrainingSet {
    /// Snapshots of every closed deal with a close time and a stage history. The medians the
    /// features compare against are those known at the holdout cutoff (the win rates are
    /// always those before each snapshot's time), so the holdout sees no future.
    pub fn build(inputs: &Inputs, rates: &RateBook, holdout: f64) -> Self {
        let mut closes: Vec<(f64, usize)> = (0..inputs.deals.len())
            .filter_map(|i| inputs.closed_at(i).map(|t| (t, i)))
            .filter(|(_, i)| !inputs.stays[*i].is_empty())
            .collect();
        closes.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut set = TrainingSet {
            closed_deals: closes.len(),
            won_deals: closes.iter().filter(|c| inputs.deals[c.1].is_won).count(),
            ..TrainingSet::default()
        };
        if closes.is_empty() {
            return set;
        }
        let first_test = ((closes.len() as f64) * (1.0 - holdout)).floor() as usize;
        set.cutoff = closes[first_test.min(closes.len() - 1)].0;
        let reference = Reference::build_until(inputs, set.cutoff);
        for (t, i) in closes {
            let won = inputs.deals[i].is_won;
            for s in closed_snapshots(inputs, i) {
                let row = features(inputs, &reference, rates, &s);
                set.rows.push(row.values.to_vec());
                set.labels.push(won);
                set.deals.push(i);
                set.stages.push(s.stage);
                set.is_test.push(t >= set.cutoff);
            }
        }
        set
    }

    fn part(&self, test: bool) -> (Vec<Vec<f64>>, Vec<bool>, Vec<usize>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut stages = Vec::new();
        for k in 0..self.rows.len() {
            if self.is_test[k] == test {
                rows.push(self.rows[k].clone());
                labels.push(self.labels[k]);
                stages.push(self.stages[k]);
            }
        }
        (rows, labels, stages)
    }

    /// (won, lost) deals in the training part or the holdout.
    fn classes(&self, inputs_won: impl Fn(usize) -> bool, test: bool) -> (usize, usize) {
        let mut seen = std::collections::HashSet::new();
        let (mut won, mut lost) = (0, 0);
        for k in 0..self.rows.len() {
            if self.is_test[k] == test && seen.insert(self.deals[k]) {
                if inputs_won(self.deals[k]) {
                    won += 1;
                } else {
                    lost += 1;
                }
            }
        }
        (won, lost)
    }

    /// Writes `train.csv` and `test.csv` (the feature columns, then `label` 0/1) into `dir`,
    /// for cross-checking the fit with another tool.
    pub fn export_csv(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path, source: std::io::Error| ScoringError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for (name, test) in [("train.csv", false), ("test.csv", true)] {
            let path = dir.join(name);
            let mut text = FEATURES.join(",");
            text.push_str(",label\n");
            for k in 0..self.rows.len() {
                if self.is_test[k] != test {
                    continue;
                }
                for v in &self.rows[k] {
                    // Shortest round-trip representation: the other side reads the same f64.
                    text.push_str(&format!("{v:?},"));
                }
                text.push_str(if self.labels[k] { "1\n" } else { "0\n" });
            }
            std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        }
        Ok(())
    }
}

/// Holdout quality of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// ROC-AUC on the holdout rows.
    pub auc: f64,
    pub log_loss: f64,
    /// Mean ROC-AUC within each stage, weighted by rows: what the context adds beyond the stage.
    pub within_stage_auc: Option<f64>,
    pub train_auc: Option<f64>,
    /// Share of holdout rows whose deal was won.
    pub base_rate: f64,
    pub train_rows: usize,
    pub test_rows: usize,
    pub train_deals: usize,
    pub test_deals: usize,
    pub calibration: Vec<CalibrationBin>,
}

/// A trained model and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskModel {
    /// 0 until stored.
    pub version: i64,
    pub trained_at: DateTime<Utc>,
    pub features: Vec<String>,
    pub logistic: Logistic,
    pub metrics: Metrics,
    /// Deals closed from this time on were held out.
    pub holdout_from: f64,
    pub active: bool,
    /// `active`, `retired` (replaced by a better or forced model) or `rejected` (worse than the
    /// active model on its holdout, not activated).
    pub status: String,
    pub note: String,
}

/// What training produced.
#[derive(Debug, Clone)]
pub enum Training {
    Model(Box<RiskModel>, TrainingSet),
    /// Too little closed history: scoring falls back to rules.
    TooFew {
        reason: String,
    },
}

fn metrics_of(model: &Logistic, set: &TrainingSet) -> Option<Metrics> {
    let (train_rows, train_y, _) = set.part(false);
    let (test_rows, test_y, test_stages) = set.part(true);
    let p_test: Vec<f64> = test_rows.iter().map(|r| model.predict(r)).collect();
    let p_train: Vec<f64> = train_rows.iter().map(|r| model.predict(r)).collect();
    let auc = roc_auc(&p_test, &test_y)?;
    let mut weighted = 0.0;
    let mut weight = 0.0;
    for stage in 0..6 {
        let idx: Vec<usize> = (0..p_test.len())
            .filter(|&k| test_stages[k] == stage)
            .collect();
        let p: Vec<f64> = idx.iter().map(|&k| p_test[k]).collect();
        let y: Vec<bool> = idx.iter().map(|&k| test_y[k]).collect();
        if let Some(a) = roc_auc(&p, &y) {
            weighted += a * idx.len() as f64;
            weight += idx.len() as f64;
        }
    }
    let count_deals = |test: bool| {
        (0..set.rows.len())
            .filter(|&k| set.is_test[k] == test)
            .map(|k| set.deals[k])
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    Some(Metrics {
        auc,
        log_loss: log_loss(&p_test, &test_y)?,
        within_stage_auc: (weight > 0.0).then(|| weighted / weight),
        train_auc: roc_auc(&p_train, &train_y),
        base_rate: test_y.iter().filter(|y| **y).count() as f64 / test_y.len().max(1) as f64,
        train_rows: train_rows.len(),
        test_rows: test_rows.len(),
        train_deals: count_deals(false),
        test_deals: count_deals(true),
        calibration: calibration_deciles(&p_test, &test_y),
    })
}

/// Trains a model on the closed deals of `inputs`, or says why there is too little history.
pub fn train(
    inputs: &Inputs,
    rates: &RateBook,
    options: &TrainOptions,
    now: DateTime<Utc>,
) -> Result<Training> {
    options.validate()?;
    let set = TrainingSet::build(inputs, rates, options.holdout_share);
    if set.closed_deals < options.min_closed {
        return Ok(Training::TooFew {
            reason: format!(
                "{} closed deals with a stage history, fewer than the {} a model needs",
                set.closed_deals, options.min_closed
            ),
        });
    }
    let won = |i: usize| inputs.deals[i].is_won;
    for (part, test) in [("training part", false), ("holdout", true)] {
        let (w, l) = set.classes(won, test);
        if w < options.min_per_class || l < options.min_per_class {
            return Ok(Training::TooFew {
                reason: format!(
                    "the {part} has {w} won and {l} lost deals, fewer than {} of each",
                    options.min_per_class
                ),
            });
        }
    }
    let (rows, labels, _) = set.part(false);
    let logistic = Logistic::fit(
        &rows,
        &labels,
        &FitOptions {
            l2: options.l2,
            ..FitOptions::default()
        },
    )?;
    let metrics = metrics_of(&logistic, &set).ok_or_else(|| ScoringError::Fit {
        reason: "the holdout has a single class".to_string(),
    })?;
    let model = RiskModel {
        version: 0,
        trained_at: now,
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        logistic,
        metrics,
        holdout_from: set.cutoff,
        active: true,
        status: "active".into(),
        note: String::new(),
    };
    Ok(Training::Model(Box::new(model), set))
}

/// Whether a model can score today's features (its features are the current ones).
pub fn is_current(model: &RiskModel) -> bool {
    model.features.len() == P && model.features.iter().zip(FEATURES).all(|(a, b)| a == b)
}

/// What happens to a newly trained model.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No active model: the new one is activated.
    First,
    /// At least as good as the active model on the new holdout: activated.
    Better { previous: i64, previous_auc: f64 },
    /// Worse than the active model on the new holdout, activated because forced.
    Forced { previous: i64, previous_auc: f64 },
    /// Worse than the active model on the new holdout: stored, not activated.
    Kept { previous: i64, previous_auc: f64 },
}

impl Decision {
    pub fn activates(&self) -> bool {
        !matches!(self, Decision::Kept { .. })
    }
}

/// Decides between the active model (if any) and a new one, scoring both on the new holdout.
/// An active model with other features than today's is compared on its stored AUC.
pub fn decide(
    active: Option<&RiskModel>,
    new: &RiskModel,
    set: &TrainingSet,
    force: bool,
) -> Decision {
    let Some(old) = active else {
        return Decision::First;
    };
    let previous_auc = if is_current(old) {
        metrics_of(&old.logistic, set).map_or(old.metrics.auc, |m| m.auc)
    } else {
        old.metrics.auc
    };
    let previous = old.version;
    if new.metrics.auc + 1e-9 >= previous_auc {
        Decision::Better {
            previous,
            previous_auc,
        }
    } else if force {
        Decision::Forced {
            previous,
            previous_auc,
        }
    } else {
        Decision::Kept {
            previous,
            previous_auc,
        }
    }
}

/// The stored form of the coefficients (the `coefficients` JSON column).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCoefficients {
    pub intercept: f64,
    pub l2: f64,
    pub iterations: usize,
    pub converged: bool,
    pub features: Vec<StoredFeature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFeature {
    pub name: String,
    /// On the standardized scale.
    pub coefficient: f64,
    pub mean: f64,
    pub std: f64,
}

impl RiskModel {
    /// The JSON of the coefficients, with the feature names.
    pub fn coefficients_json(&self) -> String {
        let stored = StoredCoefficients {
            intercept: self.logistic.intercept,
            l2: self.logistic.l2,
            iterations: self.logistic.iterations,
            converged: self.logistic.converged,
            features: self
                .features
                .iter()
                .enumerate()
                .map(|(j, name)| StoredFeature {
                    name: name.clone(),
                    coefficient: self.logistic.coefficients.get(j).copied().unwrap_or(0.0),
                    mean: self.logistic.means.get(j).copied().unwrap_or(0.0),
                    std: self.logistic.stds.get(j).copied().unwrap_or(1.0),
                })
                .collect(),
        };
        serde_json::to_string(&stored).unwrap_or_else(|_| "{}".to_string())
    }

    /// The model behind stored coefficients JSON.
    pub fn logistic_from_json(
        text: &str,
        workspace: &str,
        version: i64,
    ) -> Result<(Vec<String>, Logistic)> {
        let stored: StoredCoefficients =
            serde_json::from_str(text).map_err(|e| ScoringError::BadStoredModel {
                workspace: workspace.to_string(),
                version,
                reason: format!("its coefficients are not the expected JSON: {e}"),
            })?;
        let names = stored.features.iter().map(|f| f.name.clone()).collect();
        Ok((
            names,
            Logistic {
                intercept: stored.intercept,
                coefficients: stored.features.iter().map(|f| f.coefficient).collect(),
                means: stored.features.iter().map(|f| f.mean).collect(),
                stds: stored.features.iter().map(|f| f.std).collect(),
                l2: stored.l2,
                iterations: stored.iterations,
                converged: stored.converged,
            },
        ))
    }
}

/// The standardized coefficients by feature name (reports, cross-checks).
pub fn coefficient_map(model: &RiskModel) -> HashMap<String, f64> {
    model
        .features
        .iter()
        .cloned()
        .zip(model.logistic.coefficients.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::logistic::Logistic;

    fn model(version: i64, auc: f64) -> RiskModel {
        RiskModel {
            version,
            trained_at: Utc::now(),
            features: vec!["x".into()],
            logistic: Logistic {
                intercept: 0.0,
                coefficients: vec![1.0],
                means: vec![0.0],
                stds: vec![1.0],
                l2: 1.0,
                iterations: 1,
                converged: true,
            },
            metrics: Metrics {
                auc,
                log_loss: 0.6,
                within_stage_auc: None,
                train_auc: None,
                base_rate: 0.3,
                train_rows: 1,
                test_rows: 1,
                train_deals: 1,
                test_deals: 1,
                calibration: Vec::new(),
            },
            holdout_from: 0.0,
            active: true,
            status: "active".into(),
            note: String::new(),
        }
    }

    #[test]
    fn a_worse_model_does_not_replace_the_active_one_unless_forced() {
        // The old model has other features than today's: compared on its stored AUC.
        let set = TrainingSet::default();
        let old = model(3, 0.80);
        let worse = model(0, 0.75);
        assert_eq!(
            decide(Some(&old), &worse, &set, false),
            Decision::Kept {
                previous: 3,
                previous_auc: 0.80
            }
        );
        assert!(decide(Some(&old), &worse, &set, true).activates());
        assert!(decide(Some(&old), &model(0, 0.81), &set, false).activates());
        assert_eq!(decide(None, &worse, &set, false), Decision::First);
    }

    #[test]
    fn coefficients_round_trip_through_json() {
        let m = model(1, 0.7);
        let (names, l) = RiskModel::logistic_from_json(&m.coefficients_json(), "w", 1).unwrap();
        assert_eq!(names, vec!["x".to_string()]);
        assert_eq!(l, m.logistic);
        assert!(RiskModel::logistic_from_json("{", "w", 1).is_err());
    }
}
