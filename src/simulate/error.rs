//! Errors of the simulation engine.

use crate::lake::{DatasetRef, LakeError};
use crate::sql::SqlError;

/// Everything that can go wrong while building a chain model, simulating or writing forecasts.
///
/// Variants name what is wrong and where (dataset, context, stage, deal) and whose fault it is:
/// the user's input (a scenario, a deal id), the mined data (a mart row), or the lake.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A model built from arrays or marts is not a usable chain (user or upstream data fault).
    #[error("invalid chain model: {reason}")]
    InvalidModel { reason: String },
    /// A row of a mining mart cannot be used.
    #[error("{dataset}: {reason} (context `{context}`, stage `{stage}`)")]
    BadMartRow {
        dataset: DatasetRef,
        context: String,
        stage: String,
        reason: String,
    },
    /// A mining mart has no rows for the workspace: run `revlake mine` first.
    #[error(
        "{dataset} has no rows for workspace `{workspace}`: mine the stage history first (revlake mine --workspace {workspace})"
    )]
    NoMinedModel {
        dataset: DatasetRef,
        workspace: String,
    },
    /// A mart column is missing or has another type than the simulator reads.
    #[error("{dataset}: column `{column}` is missing or not {expected}")]
    BadMartColumn {
        dataset: DatasetRef,
        column: String,
        expected: &'static str,
    },
    /// The asked deal is not an open deal of the workspace.
    #[error("deal `{deal}` is not an open deal of workspace `{workspace}`{hint}")]
    NoSuchDeal {
        deal: String,
        workspace: String,
        hint: String,
    },
    /// The workspace has no deals (user input: a misspelt workspace, or nothing landed yet).
    #[error(
        "workspace `{workspace}` has no deals in staging.deals (workspaces with deals: {known})"
    )]
    NoSuchWorkspace { workspace: String, known: String },
    /// A backtest has nothing to score at its as-of time (user input: the date).
    #[error("nothing to backtest in workspace `{workspace}` as of {as_of}: {reason}")]
    NothingToBacktest {
        workspace: String,
        as_of: String,
        reason: String,
    },
    /// Mining the history as of a past time for a backtest failed.
    #[error("mining the stage history of workspace `{workspace}` as of {as_of}: {source}")]
    Mining {
        workspace: String,
        as_of: String,
        #[source]
        source: Box<crate::mining::MiningError>,
    },
    /// A scenario string does not parse (user input).
    #[error("`{input}` is not a scenario: {reason}")]
    BadScenario { input: String, reason: String },
    /// A scenario cannot change this deal (user input: e.g. the deal already has a champion).
    #[error("scenario `{scenario}` does not apply to deal `{deal}`: {reason}")]
    ScenarioNotApplicable {
        scenario: String,
        deal: String,
        reason: String,
    },
    /// Simulation settings out of range (user input).
    #[error("invalid simulation settings: {reason}")]
    InvalidConfig { reason: String },
    /// The exact oracle cannot invert `I - Q`: some transient state never reaches an absorbing one.
    #[error("the chain has no exact absorption solution: {reason}")]
    Singular { reason: String },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Building the output batch failed (an internal bug: the columns are built to the schema).
    #[error("building {dataset} rows failed: {source}")]
    Arrow {
        dataset: DatasetRef,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The blocking simulation task panicked or was cancelled (an internal bug).
    #[error("the simulation task failed: {reason}")]
    Task { reason: String },
}

impl SimulateError {
    /// Whether the error is the user's input (scenario, deal id, settings) rather than the data
    /// or the system.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            SimulateError::NoSuchDeal { .. }
                | SimulateError::NoSuchWorkspace { .. }
                | SimulateError::NothingToBacktest { .. }
                | SimulateError::BadScenario { .. }
                | SimulateError::ScenarioNotApplicable { .. }
                | SimulateError::InvalidConfig { .. }
        )
    }
}

/// The simulation module's result type.
pub type Result<T, E = SimulateError> = std::result::Result<T, E>;
