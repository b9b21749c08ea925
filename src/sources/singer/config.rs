//! A tap connection's options: the command, the tap's config (a JSON file or an inline table,
//! with the connection's credentials merged in), and its catalog.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::super::source::Connection;
use super::super::{Result, SourceError};

/// Which protocol the subprocess speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Singer: `tap --config C [--catalog K | --properties K] [--state S]`.
    Singer,
    /// Airbyte: `source read --config C --catalog K [--state S]`.
    Airbyte,
}

/// The options a tap connection accepts (under `options`).
const KNOWN_OPTIONS: [&str; 5] = ["command", "config", "catalog", "properties", "page_records"];

/// Records per page when `page_records` is not set.
fn default_page_records() -> usize {
    5_000
}

/// A validated tap connection.
#[derive(Clone)]
pub struct TapConfig {
    pub connection: String,
    pub protocol: Protocol,
    /// The tap's argv (`["tap-csv"]`, `["python3", "tap.py"]`).
    pub command: Vec<String>,
    /// The tap's config document, credentials included: written to a private temporary file
    /// for each run, never logged.
    pub config: Map<String, Value>,
    /// `--catalog` (Singer, Airbyte); for Airbyte, discovered when absent.
    pub catalog: Option<PathBuf>,
    /// `--properties` (older Singer taps).
    pub properties: Option<PathBuf>,
    /// Streams to land (the tap's names); all when empty.
    pub streams: Vec<String>,
    /// Records of one stream per landed page.
    pub page_records: usize,
    /// The credentials' values, masked in the tap's forwarded stderr.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for TapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapConfig")
            .field("connection", &self.connection)
            .field("protocol", &self.protocol)
            .field("command", &self.command)
            .field("config", &"***")
            .field("catalog", &self.catalog)
            .field("properties", &self.properties)
            .field("streams", &self.streams)
            .finish()
    }
}

impl TapConfig {
    /// Reads the connection's options and credentials (the environment variables are read
    /// now, so a missing one fails before the tap is started).
    pub fn from_connection(connection: &Connection, protocol: Protocol) -> Result<Self> {
        let bad = |reason: String| SourceError::Config {
            connection: connection.name.clone(),
            reason,
        };
        if let Some(unknown) = connection
            .options
            .keys()
            .find(|k| !KNOWN_OPTIONS.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "unknown option `{unknown}` for a {} connection; known: {}",
                connection.source,
                KNOWN_OPTIONS.join(", ")
            )));
        }
        let command = match connection.options.get("command") {
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("`command` must be a list of strings".into()))?,
            Some(toml::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(_) => return Err(bad("`command` must be a list of strings".into())),
            None => Vec::new(),
        };
        if command.is_empty() {
            return Err(bad(format!(
                "a {} connection needs `command` (or `options.command`), the tap's argv (e.g. `command = [\"tap-csv\"]`)",
                connection.source
            )));
        }
        let mut config = match connection.options.get("config") {
            None => Map::new(),
            Some(toml::Value::String(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("cannot read the tap config file {path}: {e}")))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => {
                        return Err(bad(format!("the tap config {path} is not a JSON object")));
                    }
                    Err(e) => return Err(bad(format!("the tap config {path} is not JSON: {e}"))),
                }
            }
            Some(toml::Value::Table(t)) => match serde_json::to_value(t) {
                Ok(Value::Object(m)) => m,
                _ => return Err(bad("`options.config` cannot be read as JSON".into())),
            },
            Some(_) => {
                return Err(bad(
                    "`options.config` must be a JSON file path or an inline table".into(),
                ));
            }
        };
        let mut secrets = Vec::new();
        for credential in connection.credentials.keys() {
            let secret = connection.secret(credential)?;
            secrets.push(secret.expose().to_string());
            config.insert(
                credential.clone(),
                Value::String(secret.expose().to_string()),
            );
        }
        let path = |key: &str| connection.option_str(key).map(PathBuf::from);
        let (catalog, properties) = (path("catalog"), path("properties"));
        if catalog.is_some() && properties.is_some() {
            return Err(bad(
                "give the tap `catalog` or `properties`, not both".into()
            ));
        }
        if protocol == Protocol::Airbyte && properties.is_some() {
            return Err(bad(
                "Airbyte sources take a `catalog` (a configured catalog), not `properties`".into(),
            ));
        }
        for p in catalog.iter().chain(properties.iter()) {
            if !p.is_file() {
                return Err(bad(format!(
                    "the catalog file {} does not exist",
                    p.display()
                )));
            }
        }
        Ok(TapConfig {
            connection: connection.name.clone(),
            protocol,
            command,
            config,
            catalog,
            properties,
            streams: connection.streams.clone(),
            page_records: connection
                .option_u64("page_records")
                .map_or(default_page_records(), |n| n.clamp(1, 1_000_000) as usize),
            secrets,
        })
    }

    /// The tap's name for messages: its program's file name.
    pub fn tap_name(&self) -> String {
        let program = std::path::Path::new(&self.command[0])
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_else(|| self.command[0].clone());
        // `python3 tap.py`: the script names the tap better than the interpreter.
        match self.command.get(1) {
            Some(script) if program.starts_with("python") || program == "node" => {
                std::path::Path::new(script)
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or(program)
            }
            _ => program,
        }
    }

    /// Whether records of `stream` are landed.
    pub fn selects(&self, stream: &str) -> bool {
        self.streams.is_empty() || self.streams.iter().any(|s| s.eq_ignore_ascii_case(stream))
    }
}
