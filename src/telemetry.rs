//! Logging setup and the named events of recurring counters.
//!
//! Logs go to stderr: human-readable on a terminal, JSON lines otherwise (CI, cron, pipes), so
//! that stdout carries only results. `REVLAKE_LOG` (an `EnvFilter` directive such as
//! `revlake=debug`) overrides the level chosen by `-v`/`-q`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `verbosity`: -1 quiet (errors), 0 info, 1 debug, 2+ trace.
pub fn init(verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-1 => "error",
        0 => "warn,revlake=info",
        1 => "info,revlake=debug",
        _ => "debug,revlake=trace",
    };
    let filter = EnvFilter::try_from_env("REVLAKE_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        builder.with_target(false).compact().try_init()
    } else {
        builder.json().with_current_span(true).try_init()
    };
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = result;
}

/// A dataset write was committed.
pub fn dataset_written(dataset: &str, version: i64, rows: u64) {
    tracing::info!(dataset, version, rows, "committed");
}

/// Rows that failed validation were quarantined instead of landed.
pub fn rows_quarantined(dataset: &str, rows: u64, file: &str) {
    tracing::warn!(dataset, rows, file, "rows quarantined");
}
