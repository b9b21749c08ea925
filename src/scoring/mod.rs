//! Risk scoring: per-deal features, a logistic risk model (own IRLS with L2), computed fields
//! (velocity, engagement, risk, health, top factors) and insight alerts.
//!
//! ```text
//! staging.deals, deal_stage_history, activities, conversations, deal_contacts, users
//!   (+ marts.deal_forecasts p_win) ─▶ Inputs ─▶ features (as known at a time)
//!        closed deals ─▶ snapshots ─▶ train / time-based holdout ─▶ marts.risk_models
//!        open deals ─▶ model (or rules) ─▶ DealScore ─▶ marts.deal_scores
//!        scores + history ─▶ alert rules ─▶ reconcile (dedup by id) ─▶ marts.alerts
//!                                         └─▶ weekly digest (HTML)
//! ```
//!
//! Entry points: [`score_workspace`] (a whole run), [`explain_deal`], and the pure pieces
//! ([`logistic::Logistic`], [`metrics`], [`alerts`]) for tests and other callers.

pub mod alerts;
pub mod bench;
mod columns;
pub mod data;
pub mod digest;
mod error;
pub mod features;
pub mod logistic;
pub mod metrics;
pub mod model;
pub mod rules;
mod run;
pub mod score;
pub mod store;
pub mod trends;

pub use alerts::{Alert, AlertRow, AlertThresholds, new_alerts};
pub use data::{Inputs, load_inputs};
pub use error::{Result, ScoringError};
pub use model::{Decision, RiskModel, TrainOptions};
pub use run::{
    Explanation, ScoreOptions, ScoreReport, TrainingReport, explain_deal, score_workspace,
};
pub use score::{DealScore, Factor, Method};
pub use store::Schemas;
