//! The batched Monte Carlo engine: open deals simulated forward through the mined stage chain
//! to closed_won or closed_lost, what-if scenarios with common random numbers, deal forecasts,
//! and the exact Markov-chain oracle the engine is checked against.
//!
//! ```text
//! marts.stage_transition_matrix ─┐
//! marts.stage_durations ─────────┼─▶ ChainModel ─▶ Simulator (flat tables) ─┐
//! staging.deals (+ history,      │                                         ├─▶ DealStats ─▶ marts.deal_forecasts
//!   contacts, activities) ───────┴─▶ OpenDeal ──▶ SimDeal (stage, age, ctx)─┘
//!                                          └─ Scenario::apply ─▶ modified SimDeal (same key: CRN)
//! ```
//!
//! # Determinism
//!
//! Every random number is a pure function of (seed, deal id, run, step) ([`rng`]): a forecast
//! is bit-identical whatever the thread count or batch size, one deal re-simulated alone gets
//! the numbers it had among all, and a scenario sees the numbers of its baseline.
//!
//! # Checking
//!
//! [`oracle::absorption`] solves the context-free chain exactly (`N = (I − Q)^-1`); the tests
//! hold the Monte Carlo estimates of every start stage within 3 standard errors of it.

pub mod backtest;
pub mod bench;
mod columns;
pub mod deals;
pub mod engine;
mod error;
pub mod facts;
pub mod forecast;
mod kernel;
pub mod linalg;
mod marts;
pub mod model;
pub mod oracle;
mod output;
pub mod pipeline;
pub mod recommend;
pub mod render;
pub mod rng;
pub mod scenario;
pub mod stats;

pub use deals::{OpenDeal, load_open_deals};
pub use engine::{OwnedRuns, RunOutcomes, SimConfig, SimDeal, Simulator};
pub use error::{Result, SimulateError};
pub use forecast::{
    DealForecast, ForecastOptions, WorkspaceForecast, forecast_deals, forecast_workspace,
};
pub use marts::{DURATIONS, TRANSITIONS};
pub use model::{ChainModel, Context, QuantileTable};
pub use scenario::{Scenario, ScenarioComparison, compare, simulate_scenario};
pub use stats::{Calendar, DealStats, StatsScratch};
