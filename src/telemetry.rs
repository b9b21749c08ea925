//! Logging setup and the named events of recurring counters.
//!
//! Logs go to stderr, so that stdout carries only results. By default (`--log-format auto`)
//! they are human-readable on a terminal and JSON lines otherwise (CI, cron, pipes, log
//! collectors); `--log-format text` or `json` forces one. A JSON line has `timestamp`,
//! `level`, `target`, `fields`, and the `span` and `spans` it happened in, such as `job`,
//! `stage`, `model`. `REVLAKE_LOG` (an `EnvFilter` directive such as
//! `revlake=debug`) overrides the level chosen by `-v`/`-q`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    /// Human-readable lines (colored on a terminal).
    Text,
    /// One JSON object per line, with the enclosing spans.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LogFormat::Auto),
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "`{other}` is not a log format: use auto, text or json"
            )),
        }
    }
}

/// Installs the global subscriber. `verbosity`: -1 quiet (errors), 0 info, 1 debug, 2+ trace.
pub fn init(verbosity: i8, format: LogFormat) {
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
    let terminal = std::io::stderr().is_terminal();
    let format = match format {
        LogFormat::Auto if terminal => LogFormat::Text,
        LogFormat::Auto => LogFormat::Json,
        f => f,
    };
    let result = match format {
        LogFormat::Text if terminal => builder.with_target(false).compact().try_init(),
        LogFormat::Text | LogFormat::Auto => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_a_wrong_one_is_named() {
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("auto".parse::<LogFormat>(), Ok(LogFormat::Auto));
        assert_eq!(LogFormat::default(), LogFormat::Auto);
        let e = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(
            e.contains("`yaml`") && e.contains("auto, text or json"),
            "{e}"
        );
    }
}
