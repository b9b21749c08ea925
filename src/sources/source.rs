//! The connector contract: a [`Source`] lists its streams (the vendor's objects) and reads one
//! as pages of Arrow record batches from a cursor; [`Connection`] is a named connection of a
//! pipeline (vendor, base URL, credentials by environment-variable name, streams, options).

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use url::Url;

use super::SourceError;
use super::http::Secret;

/// One object of a vendor, landed as `raw.<table>`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamSpec {
    /// The vendor's name of the object: `Opportunity`, `deals`.
    pub name: String,
    /// The raw table it lands in (without the `raw.` layer): `salesforce_opportunity`.
    pub table: String,
    /// Landed (snake_case) key columns; the landing merges on them and `workspace_id`.
    pub primary_key: Vec<String>,
    /// The landed timestamp column incremental syncs resume from (`system_modstamp`,
    /// `hs_lastmodifieddate`, `update_time`); `None` for streams always read whole.
    pub cursor_field: Option<String>,
    /// Pages arrive in ascending cursor order, so each committed checkpoint may advance the
    /// cursor. Otherwise the cursor only moves when the whole stream was read.
    pub ordered: bool,
}

impl StreamSpec {
    pub fn new(source: &str, name: &str, primary_key: &[&str], cursor_field: Option<&str>) -> Self {
        StreamSpec {
            name: name.to_string(),
            table: format!("{source}_{}", super::naming::snake_case(name)),
            primary_key: primary_key.iter().map(|s| s.to_string()).collect(),
            cursor_field: cursor_field.map(str::to_string),
            ordered: false,
        }
    }

    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }
}

/// A page of records as Arrow: the vendor's fields (snake_case), `source_data` (the record as
/// JSON text) and `_deleted` (tombstones). The landing adds the workspace and sync columns.
#[derive(Debug, Clone)]
pub struct Page {
    pub batch: RecordBatch,
    /// The URL (redacted) the page came from, for messages.
    pub url: String,
    /// Values that did not fit their column's type (landed as null, kept in `source_data`).
    pub coerced: u64,
    /// How this page's cursor values count; `None` follows the stream's `ordered`.
    pub cursor: Option<CursorRole>,
}

/// How a page's cursor values move the stream's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorRole {
    /// In ascending cursor order after the pages before it: a checkpoint may advance the
    /// cursor to its largest value.
    Ordered,
    /// Out of order (a Bulk API result, a second pass): its values count only once the whole
    /// stream was read, and checkpoints after it keep the cursor where it was.
    Unordered,
    /// Never moves the cursor (tombstones listed whole on every sync, whose deletion time says
    /// nothing about which live changes were read).
    Ignored,
}

/// Where an incremental read starts: records changed at or after `since` (inclusive, so ties
/// at the boundary are re-read and merged, never lost).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadFrom {
    pub since: Option<DateTime<Utc>>,
}

/// A vendor connector.
pub trait Source: Send + Sync {
    /// The vendor: `salesforce`, `hubspot`, `pipedrive`.
    fn vendor(&self) -> &'static str;

    /// The streams this connection syncs.
    fn streams(&self) -> Vec<StreamSpec>;

    /// Reads `stream` from `from` as pages; an error ends the stream.
    fn read<'a>(
        &'a self,
        stream: &'a StreamSpec,
        from: ReadFrom,
    ) -> BoxStream<'a, Result<Page, SourceError>>;

    /// Request counters of the connection's client: (requests, retries).
    fn request_stats(&self) -> (u64, u64);

    /// The whole-run reader of a source that emits all its streams in one run and resumes
    /// from an opaque state document (Singer taps, Airbyte sources); `None` for sources read
    /// stream by stream. When `Some`, [`super::sync::sync_source`] lands through it and
    /// [`Source::read`] is not called.
    fn stateful(&self) -> Option<&dyn StatefulSource> {
        None
    }
}

/// What a [`StatefulSource`] emits, in order.
#[derive(Debug, Clone)]
pub enum StatefulEvent {
    /// Records of one stream; the spec (table, key) may first be learnt during the run (a
    /// Singer `SCHEMA` message) and stays the same for the stream's later pages.
    Page { stream: StreamSpec, page: Page },
    /// The state document that resumes the source after everything emitted before it: a
    /// checkpoint, committed only once those records were landed.
    State(serde_json::Value),
}

/// A source read in one run over all its streams, whose cursor is an opaque JSON state
/// document the source gets back on the next run (stored in `ops.sync_state`).
pub trait StatefulSource: Send + Sync {
    /// Reads every stream from `state` (from the start when `None`); an error ends the run
    /// and nothing after the last [`StatefulEvent::State`] is committed.
    fn read_all<'a>(
        &'a self,
        state: Option<serde_json::Value>,
    ) -> BoxStream<'a, Result<StatefulEvent, SourceError>>;
}

/// A named connection, as declared in a pipeline file under `[connections.NAME]`.
///
/// A Singer tap or Airbyte source names its argv with a top-level `command`
/// (`command = ["tap-csv"]`), kept in [`Connection::options`] under `command`, where the tap
/// reads it (`options.command` is accepted too, not both).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "ConnectionFile")]
pub struct Connection {
    /// Filled from the table key.
    #[serde(skip)]
    pub name: String,
    /// The vendor (`revlake sources` lists them).
    pub source: String,
    /// API root (Salesforce: the login URL), for sandboxes, regional hosts, proxies and mock
    /// servers; the vendor's public endpoint when absent.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Credential name → the environment variable holding it. Never the secret itself.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// Streams to sync; the vendor's defaults when empty.
    #[serde(default)]
    pub streams: Vec<String>,
    /// Requests one sync may make; no limit when absent.
    #[serde(default)]
    pub request_budget: Option<u64>,
    /// Vendor options (API version, field lists, Bulk API threshold, ...).
    #[serde(default)]
    pub options: toml::Table,
}

/// [`Connection`] as written in a pipeline file: its fields and a top-level `command`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionFile {
    source: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    credentials: BTreeMap<String, String>,
    #[serde(default)]
    streams: Vec<String>,
    #[serde(default)]
    request_budget: Option<u64>,
    #[serde(default)]
    command: Option<toml::Value>,
    #[serde(default)]
    options: toml::Table,
}

impl TryFrom<ConnectionFile> for Connection {
    type Error = String;

    fn try_from(file: ConnectionFile) -> Result<Self, String> {
        let mut options = file.options;
        if let Some(command) = file.command {
            if options.contains_key("command") {
                return Err(
                    "the tap's command is given twice: keep `command` or `options.command`, not both"
                        .into(),
                );
            }
            options.insert("command".into(), command);
        }
        Ok(Connection {
            name: String::new(),
            source: file.source,
            base_url: file.base_url,
            credentials: file.credentials,
            streams: file.streams,
            request_budget: file.request_budget,
            options,
        })
    }
}

impl Connection {
    /// The secret named `credential`, read from its environment variable.
    pub fn secret(&self, credential: &str) -> Result<Secret, SourceError> {
        let var = self
            .credentials
            .get(credential)
            .ok_or_else(|| SourceError::Config {
                connection: self.name.clone(),
                reason: format!(
                    "no environment variable is named for credential `{credential}`: add `credentials.{credential} = \"ENV_VAR\"` to the connection (or `revlake connect {} --source {} --credential {credential}=ENV_VAR`)",
                    self.name, self.source
                ),
            })?;
        Secret::from_env(var, &self.name, credential)
    }

    /// A client configuration for this connection: its name, `base_url` (or `default`), the
    /// request budget, and the generic options `timeout_secs`, `max_attempts`,
    /// `min_backoff_ms`, `max_backoff_ms`.
    pub fn client_config(
        &self,
        default_base_url: &str,
        auth: super::http::Auth,
    ) -> Result<super::http::ClientConfig, SourceError> {
        use std::time::Duration;
        let mut config =
            super::http::ClientConfig::new(&self.name, self.base_url_or(default_base_url)?, auth);
        config.request_budget = self.request_budget;
        if let Some(s) = self.option_u64("timeout_secs") {
            config.timeout = Duration::from_secs(s.max(1));
        }
        if let Some(n) = self.option_u64("max_attempts") {
            config.max_attempts = n.clamp(1, 20) as usize;
        }
        if let Some(ms) = self.option_u64("min_backoff_ms") {
            config.min_backoff = Duration::from_millis(ms);
        }
        if let Some(ms) = self.option_u64("max_backoff_ms") {
            config.max_backoff = Duration::from_millis(ms);
        }
        Ok(config)
    }

    pub fn has_credential(&self, credential: &str) -> bool {
        self.credentials.contains_key(credential)
    }

    /// `base_url`, or `default` when none is configured.
    pub fn base_url_or(&self, default: &str) -> Result<Url, SourceError> {
        let raw = self.base_url.as_deref().unwrap_or(default);
        Url::parse(raw).map_err(|e| SourceError::Config {
            connection: self.name.clone(),
            reason: format!("base_url {raw:?} is not a URL: {e}"),
        })
    }

    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(|v| v.as_str())
    }

    pub fn option_u64(&self, key: &str) -> Option<u64> {
        self.options
            .get(key)
            .and_then(|v| v.as_integer())
            .and_then(|v| u64::try_from(v).ok())
    }

    pub fn option_list(&self, key: &str) -> Vec<String> {
        self.options
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The streams to sync: the configured ones (checked against `all`), else `defaults`.
    pub fn select_streams(
        &self,
        all: &[&str],
        defaults: &[&str],
    ) -> Result<Vec<String>, SourceError> {
        if self.streams.is_empty() {
            return Ok(defaults.iter().map(|s| s.to_string()).collect());
        }
        for s in &self.streams {
            if !all.iter().any(|a| a.eq_ignore_ascii_case(s)) {
                return Err(SourceError::Config {
                    connection: self.name.clone(),
                    reason: format!(
                        "unknown {} stream {s:?}; known: {}",
                        self.source,
                        all.join(", ")
                    ),
                });
            }
        }
        Ok(self.streams.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_command_is_the_taps_command() {
        let c: Connection = toml::from_str(
            r#"
            source = "singer"
            command = ["tap-csv", "--verbose"]
            [options]
            config = "tap.json"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.options["command"],
            toml::Value::Array(vec!["tap-csv".into(), "--verbose".into()])
        );
        assert_eq!(c.option_str("config"), Some("tap.json"));

        let twice = toml::from_str::<Connection>(
            "source = \"singer\"\ncommand = \"tap-csv\"\n[options]\ncommand = \"tap-x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(twice.contains("not both"), "{twice}");
        let unknown = toml::from_str::<Connection>("source = \"singer\"\ncomand = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("comand"), "{unknown}");
    }
}
