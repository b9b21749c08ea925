//! Extract: sources land raw records in `raw.<source>_<object>` tables.
//!
//! This module holds the file import path (CSV exports of Salesforce, HubSpot and others);
//! API connectors plug in beside it through the `Source` trait.

pub mod file;
pub mod naming;

use std::path::PathBuf;

use crate::lake::LakeError;

/// Errors of extraction, naming the file (and record) or endpoint at fault.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: malformed CSV near record {record}: {reason}", path.display())]
    MalformedFile {
        path: PathBuf,
        record: u64,
        reason: String,
    },
    #[error("{}: the file has no header row", path.display())]
    NoHeader { path: PathBuf },
    #[error("importing {} failed: {source}", path.display())]
    Lake {
        path: PathBuf,
        #[source]
        source: LakeError,
    },
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;
