//! Extract: sources land raw records in `raw.<source>_<object>` tables.
//!
//! Two paths: file imports (`file`: vendor exports and other files) and API connectors, each a
//! [`source::Source`] built on the shared [`http::HttpClient`] and landed by [`sync`]. Singer
//! taps and Airbyte sources ([`singer`]) run as subprocesses and land through [`stateful`].

pub mod chargebee;
pub mod file;
pub mod fireflies;
pub mod gmail;
pub mod gong;
pub mod google_drive;
pub mod http;
pub mod hubspot;
pub mod intercom;
pub mod kit;
pub mod monday;
pub mod naming;
pub mod outreach;
pub mod paging;
pub mod pipedrive;
pub mod records;
pub mod registry;
pub mod salesforce;
pub mod salesloft;
pub mod singer;
pub mod slack;
pub mod source;
pub mod stateful;
pub mod stripe;
pub mod sync;
pub mod zendesk;

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
    #[error(
        "connection {connection}: credential `{credential}` is missing: set the environment variable {var}"
    )]
    MissingCredential {
        connection: String,
        credential: String,
        var: String,
    },
    #[error(
        "connection {connection}: {url}: not authorized: {reason} (credentials from {credentials})"
    )]
    Unauthorized {
        connection: String,
        url: String,
        reason: String,
        credentials: String,
    },
    #[error("connection {connection}: {url}: {reason}")]
    Http {
        connection: String,
        url: String,
        reason: String,
    },
    #[error("connection {connection}: malformed page {url}: {reason}")]
    MalformedPage {
        connection: String,
        url: String,
        reason: String,
    },
    #[error("connection {connection}: {reason}")]
    Config { connection: String, reason: String },
    #[error("syncing {dataset} failed: {source}")]
    Landing {
        dataset: String,
        #[source]
        source: LakeError,
    },
    /// A Singer tap or Airbyte source failed: it exited non-zero, printed a malformed message
    /// or broke the protocol. `at` is the stdout line (or the exit status), `stderr` its last
    /// lines of standard error.
    #[error(
        "connection {connection}: tap `{tap}` {at}: {reason}{}",
        stderr_tail(stderr)
    )]
    Tap {
        connection: String,
        tap: String,
        at: String,
        reason: String,
        stderr: Vec<String>,
    },
    #[error("importing {} failed: {source}", path.display())]
    Lake {
        path: PathBuf,
        #[source]
        source: LakeError,
    },
}

fn stderr_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its last stderr lines:\n  {}", lines.join("\n  "))
    }
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;
