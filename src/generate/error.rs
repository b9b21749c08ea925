//! Errors of `revlake generate`.

use std::path::PathBuf;

/// Everything that can go wrong while generating a synthetic org.
///
/// Each variant names what failed and where (the file or directory involved).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The [`GenerateConfig`](super::GenerateConfig) cannot be used.
    #[error("invalid generate config: {reason}")]
    InvalidConfig {
        /// Which setting is wrong and why.
        reason: String,
    },
    /// Creating a directory or a file, or writing/flushing one, failed.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        /// The directory or file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CSV writer failed on an export file.
    #[error("CSV error writing {}: {source}", .path.display())]
    Csv {
        /// The CSV file being written.
        path: PathBuf,
        /// The underlying error.
        source: csv::Error,
    },
    /// Serializing the ground truth (`truth.json`) failed.
    #[error("cannot write ground truth {}: {source}", .path.display())]
    Truth {
        /// The truth file being written.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}
