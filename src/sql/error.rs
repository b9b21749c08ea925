use crate::lake::LakeError;

/// Errors of SQL over the lake, split by fault: the user's SQL, or the engine.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The SQL does not parse; the message carries line and column.
    #[error("invalid SQL: {message}")]
    Parse { message: String },
    /// A statement that would change data or read files outside the lake.
    #[error(
        "revlake sql is read-only: {statement} is refused ({why}); only SELECT, WITH, VALUES, EXPLAIN, SHOW and DESCRIBE run here"
    )]
    ReadOnly {
        statement: String,
        why: &'static str,
    },
    #[error("one statement per query, found {count}")]
    MultipleStatements { count: usize },
    #[error("no SQL statement given")]
    Empty,
    #[error("unknown table `{table}`; the known tables are: {}", if known.is_empty() { "(none: the lake is empty)".to_string() } else { known.join(", ") })]
    UnknownTable { table: String, known: Vec<String> },
    /// The SQL parses but cannot be planned (unknown column, type error, ...).
    #[error("query error: {source}")]
    Plan {
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error("query failed while running: {source}")]
    Execution {
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("seed file {path} cannot be read: {source}")]
    Seed {
        path: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error("{path}: {message}")]
    Model { path: String, message: String },
    #[error("{}", models_failed(failed, blocked, skipped))]
    ModelsFailed {
        failed: Vec<(String, String)>,
        /// Datasets a critical check failed on: `(dataset, failing checks)`.
        blocked: Vec<(String, String)>,
        skipped: Vec<String>,
    },
    #[error("unknown model selector `{selector}`: {reason}")]
    Selector { selector: String, reason: String },
    #[error("models form a cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("writing the result to {path} failed: {reason}")]
    Output { path: String, reason: String },
}

/// "2 model(s) failed: ... / 1 dataset(s) failed critical checks: ... / skipped: ...".
fn models_failed(
    failed: &[(String, String)],
    blocked: &[(String, String)],
    skipped: &[String],
) -> String {
    let list = |items: &[(String, String)]| {
        items
            .iter()
            .map(|(m, e)| format!("\n  - {m}: {e}"))
            .collect::<String>()
    };
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!("{} model(s) failed:{}", failed.len(), list(failed)));
    }
    if !blocked.is_empty() {
        parts.push(format!(
            "{} dataset(s) failed critical checks, blocking what reads them:{}",
            blocked.len(),
            list(blocked)
        ));
    }
    if !skipped.is_empty() {
        parts.push(format!(
            "skipped (an input failed or was blocked): {}",
            skipped.join(", ")
        ));
    }
    parts.join("\n")
}

impl SqlError {
    /// Whether the error is the user's (bad SQL, unknown names) rather than the engine's.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            SqlError::Parse { .. }
                | SqlError::ReadOnly { .. }
                | SqlError::MultipleStatements { .. }
                | SqlError::Empty
                | SqlError::UnknownTable { .. }
                | SqlError::Plan { .. }
                | SqlError::Model { .. }
                | SqlError::Cycle { .. }
                | SqlError::Selector { .. }
        )
    }
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;
