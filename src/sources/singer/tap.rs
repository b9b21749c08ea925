//! A tap run: the subprocess started with its config, catalog and state files, its messages
//! turned into pages per stream and state checkpoints.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde_json::{Value, json};

use super::config::{Protocol, TapConfig};
use super::message::{AirbyteState, Message, parse};
use super::process::{Output, TapProcess};
use super::schema::hints;
use crate::sources::naming::snake_case;
use crate::sources::records::{FieldKind, PageBuilder};
use crate::sources::source::{
    Connection, Page, ReadFrom, Source, StatefulEvent, StatefulSource, StreamSpec,
};
use crate::sources::{Result, SourceError};

/// A Singer tap or Airbyte source run as a subprocess.
pub struct Tap {
    config: TapConfig,
    vendor: &'static str,
    /// The raw-table prefix: the connection's name as snake_case.
    prefix: String,
}

impl Tap {
    /// Reads the connection (and its credentials); the tap is started by each sync.
    pub fn open(connection: &Connection, protocol: Protocol) -> Result<Self> {
        let config = TapConfig::from_connection(connection, protocol)?;
        let prefix = snake_case(&connection.name);
        if prefix.is_empty() {
            return Err(SourceError::Config {
                connection: connection.name.clone(),
                reason: "the connection's name gives no table prefix".into(),
            });
        }
        Ok(Tap {
            config,
            vendor: match protocol {
                Protocol::Singer => super::SINGER.name,
                Protocol::Airbyte => super::AIRBYTE.name,
            },
            prefix,
        })
    }

    /// A Singer tap connection (`source = "singer"`).
    pub fn singer(connection: &Connection) -> Result<Self> {
        Self::open(connection, Protocol::Singer)
    }

    /// An Airbyte source connection (`source = "airbyte"`).
    pub fn airbyte(connection: &Connection) -> Result<Self> {
        Self::open(connection, Protocol::Airbyte)
    }

    fn spec(&self, stream: &str, key: &[String], bookmark: Option<&String>) -> StreamSpec {
        let key: Vec<String> = key.iter().map(|k| snake_case(k)).collect();
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        let bookmark = bookmark.map(|b| snake_case(b));
        StreamSpec::new(&self.prefix, stream, &key, bookmark.as_deref())
    }

    fn failure(
        &self,
        at: impl Into<String>,
        reason: impl Into<String>,
        stderr: Vec<String>,
    ) -> SourceError {
        SourceError::Tap {
            connection: self.config.connection.clone(),
            tap: self.config.tap_name(),
            at: at.into(),
            reason: reason.into(),
            stderr,
        }
    }

    /// A private directory with the tap's config file (mode 0600).
    fn files(&self) -> Result<(tempfile::TempDir, PathBuf)> {
        let io = |e: std::io::Error| {
            self.failure(
                "at start",
                format!("cannot write its config file: {e}"),
                Vec::new(),
            )
        };
        let dir = tempfile::Builder::new()
            .prefix("revlake-tap-")
            .tempdir()
            .map_err(io)?;
        let path = dir.path().join("config.json");
        write_private(&path, &Value::Object(self.config.config.clone())).map_err(io)?;
        Ok((dir, path))
    }

    fn spawn(&self, argv: Vec<OsString>, files: tempfile::TempDir) -> Result<TapProcess> {
        tracing::info!(
            connection = %self.config.connection,
            tap = %self.config.tap_name(),
            command = ?argv,
            "tap started"
        );
        TapProcess::spawn(
            &argv,
            files,
            &self.config.connection,
            &self.config.tap_name(),
            self.config.secrets.clone(),
        )
        .map_err(|e| {
            self.failure(
                "at start",
                format!("cannot run {:?}: {e}", self.config.command.join(" ")),
                Vec::new(),
            )
        })
    }

    /// Starts the read: writes the files, discovers an Airbyte catalog when none is given,
    /// spawns the tap.
    async fn start(&self, state: Option<Value>) -> Result<Run<'_>> {
        let (files, config_path) = self.files()?;
        let mut argv: Vec<OsString> = self.config.command.iter().map(OsString::from).collect();
        let mut catalog_streams = HashMap::new();
        match self.config.protocol {
            Protocol::Singer => {
                argv.extend(["--config".into(), config_path.into_os_string()]);
                if let Some(c) = &self.config.catalog {
                    argv.extend(["--catalog".into(), c.clone().into_os_string()]);
                }
                if let Some(p) = &self.config.properties {
                    argv.extend(["--properties".into(), p.clone().into_os_string()]);
                }
            }
            Protocol::Airbyte => {
                let catalog = match &self.config.catalog {
                    Some(path) => read_json(path).map_err(|e| {
                        self.failure(
                            "at start",
                            format!("cannot read the catalog {}: {e}", path.display()),
                            Vec::new(),
                        )
                    })?,
                    None => self.discover(&config_path).await?,
                };
                catalog_streams = configured_streams(&catalog);
                let catalog_path = files.path().join("catalog.json");
                write_private(&catalog_path, &catalog).map_err(|e| {
                    self.failure(
                        "at start",
                        format!("cannot write the catalog: {e}"),
                        Vec::new(),
                    )
                })?;
                argv.extend([
                    "read".into(),
                    "--config".into(),
                    config_path.into_os_string(),
                    "--catalog".into(),
                    catalog_path.into_os_string(),
                ]);
            }
        }
        if let Some(s) = state.as_ref().filter(|s| !s.is_null()) {
            let path = files.path().join("state.json");
            write_private(&path, s).map_err(|e| {
                self.failure(
                    "at start",
                    format!("cannot write the state: {e}"),
                    Vec::new(),
                )
            })?;
            argv.extend(["--state".into(), path.into_os_string()]);
        }
        let process = self.spawn(argv, files)?;
        Ok(Run {
            tap: self,
            process,
            line: 0,
            streams: HashMap::new(),
            catalog: catalog_streams,
            airbyte_state: AirbyteState::resume(state.as_ref()),
            pending: VecDeque::new(),
            done: false,
        })
    }

    /// `source discover --config C`: the catalog, configured to read every (selected) stream,
    /// incrementally where the source defines a cursor.
    async fn discover(&self, config_path: &Path) -> Result<Value> {
        let files = tempfile::Builder::new()
            .prefix("revlake-tap-")
            .tempdir()
            .map_err(|e| {
                self.failure(
                    "discover",
                    format!("cannot make a temporary directory: {e}"),
                    Vec::new(),
                )
            })?;
        let mut argv: Vec<OsString> = self.config.command.iter().map(OsString::from).collect();
        argv.extend([
            "discover".into(),
            "--config".into(),
            config_path.as_os_str().to_owned(),
        ]);
        let mut process = self.spawn(argv, files)?;
        let mut catalog = None;
        let mut line = 0u64;
        while let Some(out) = process.next().await {
            match out {
                Output::Line(l) => {
                    line += 1;
                    if l.trim().is_empty() {
                        continue;
                    }
                    match parse(Protocol::Airbyte, &l) {
                        Ok(Message::Catalog(c)) => catalog = Some(c),
                        Ok(Message::Error { message }) => {
                            return Err(self.failure(
                                format!("discover, stdout line {line}"),
                                message,
                                process.stderr_tail(),
                            ));
                        }
                        Ok(_) => {}
                        Err(reason) => {
                            return Err(self.failure(
                                format!("discover, stdout line {line}"),
                                reason,
                                process.stderr_tail(),
                            ));
                        }
                    }
                }
                Output::Exit(status) => {
                    if !status.is_some_and(|s| s.success()) {
                        return Err(self.failure(
                            format!("discover {}", exit_text(status)),
                            "the source failed",
                            process.stderr_tail(),
                        ));
                    }
                }
            }
        }
        let catalog = catalog.ok_or_else(|| {
            self.failure(
                "discover",
                "the source printed no CATALOG message",
                process.stderr_tail(),
            )
        })?;
        let streams = catalog
            .get("streams")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let configured: Vec<Value> = streams
            .into_iter()
            .filter(|s| {
                s.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| self.config.selects(n))
            })
            .map(|s| {
                let incremental = s
                    .get("supported_sync_modes")
                    .and_then(Value::as_array)
                    .is_some_and(|m| m.iter().any(|x| x == "incremental"))
                    && s.get("source_defined_cursor").and_then(Value::as_bool) == Some(true);
                let key = s
                    .get("source_defined_primary_key")
                    .cloned()
                    .unwrap_or(json!([]));
                let keyed = key.as_array().is_some_and(|k| !k.is_empty());
                json!({
                    "stream": s,
                    "sync_mode": if incremental { "incremental" } else { "full_refresh" },
                    "destination_sync_mode": if keyed { "append_dedup" } else { "append" },
                    "cursor_field": s.get("default_cursor_field").cloned().unwrap_or(json!([])),
                    "primary_key": key,
                })
            })
            .collect();
        Ok(json!({ "streams": configured }))
    }
}

/// Name → (JSON schema, top-level key fields) of a configured Airbyte catalog's streams.
fn configured_streams(catalog: &Value) -> HashMap<String, (Value, Vec<String>)> {
    let mut out = HashMap::new();
    for entry in catalog
        .get("streams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(stream) = entry.get("stream") else {
            continue;
        };
        let Some(name) = stream.get("name").and_then(Value::as_str) else {
            continue;
        };
        let key = entry
            .get("primary_key")
            .filter(|k| k.as_array().is_some_and(|a| !a.is_empty()))
            .or_else(|| stream.get("source_defined_primary_key"));
        // Top-level fields only: a nested key path cannot name a landed column.
        let key: Vec<String> = key
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|path| match path.as_array().map(Vec::as_slice) {
                Some([field]) => field.as_str().map(str::to_string),
                _ => None,
            })
            .collect();
        let schema = stream.get("json_schema").cloned().unwrap_or(Value::Null);
        out.insert(name.to_string(), (schema, key));
    }
    out
}

fn read_json(path: &Path) -> std::result::Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Writes `value` to a new file readable only by this user.
fn write_private(path: &Path, value: &Value) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(value.to_string().as_bytes())?;
    f.sync_all()
}

fn exit_text(status: Option<std::process::ExitStatus>) -> String {
    match status {
        Some(s) => match s.code() {
            Some(c) => format!("exited with code {c}"),
            None => format!("was stopped ({s})"),
        },
        None => "ended with an unknown status".into(),
    }
}

/// One stream within a run.
struct TapStream {
    spec: StreamSpec,
    builder: PageBuilder,
    hints: HashMap<String, FieldKind>,
    /// Not among the connection's streams: its records are read and dropped.
    skipped: bool,
}

/// A running read: turns stdout lines into events.
struct Run<'a> {
    tap: &'a Tap,
    process: TapProcess,
    line: u64,
    streams: HashMap<String, TapStream>,
    /// Airbyte: the configured catalog's schemas and keys.
    catalog: HashMap<String, (Value, Vec<String>)>,
    airbyte_state: AirbyteState,
    pending: VecDeque<Result<StatefulEvent>>,
    done: bool,
}

impl Run<'_> {
    fn into_events<'a>(self) -> BoxStream<'a, Result<StatefulEvent>>
    where
        Self: 'a,
    {
        stream::unfold(self, |mut run| async move {
            let event = run.next().await?;
            Some((event, run))
        })
        .boxed()
    }

    async fn next(&mut self) -> Option<Result<StatefulEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            match self.process.next().await {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Output::Line(line)) => {
                    self.line += 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let handled =
                        parse(self.tap.config.protocol, &line).and_then(|m| self.handle(m));
                    if let Err(reason) = handled {
                        self.fail(format!("stdout line {}", self.line), reason);
                    }
                }
                Some(Output::Exit(status)) => {
                    self.done = true;
                    if status.is_some_and(|s| s.success()) {
                        self.flush_all();
                    } else {
                        self.fail(
                            format!("{} after {} lines", exit_text(status), self.line),
                            "the tap failed",
                        );
                    }
                }
            }
        }
    }

    /// Ends the run with an error. The records read since the last state go out first, so
    /// the landing counts them as failed (it discards everything after the last state).
    fn fail(&mut self, at: String, reason: impl Into<String>) {
        self.flush_all();
        let e = self.tap.failure(at, reason, self.process.stderr_tail());
        self.pending.push_back(Err(e));
        self.done = true;
    }

    fn handle(&mut self, message: Message) -> std::result::Result<(), String> {
        match message {
            Message::Schema {
                stream,
                schema,
                key_properties,
                bookmark_properties,
            } => {
                self.flush(&stream);
                let spec = self
                    .tap
                    .spec(&stream, &key_properties, bookmark_properties.first());
                let hints = hints(&schema);
                let skipped = !self.tap.config.selects(&stream);
                self.streams.insert(
                    stream,
                    TapStream {
                        spec,
                        builder: PageBuilder::new(hints.clone()),
                        hints,
                        skipped,
                    },
                );
            }
            Message::Record { stream, record } => {
                if !self.streams.contains_key(&stream) {
                    match self.tap.config.protocol {
                        Protocol::Singer => {
                            return Err(format!(
                                "a RECORD for stream {stream:?} before its SCHEMA"
                            ));
                        }
                        Protocol::Airbyte => {
                            let (schema, key) =
                                self.catalog.get(&stream).cloned().unwrap_or_default();
                            let hints = hints(&schema);
                            let spec = self.tap.spec(&stream, &key, None);
                            let skipped = !self.tap.config.selects(&stream);
                            self.streams.insert(
                                stream.clone(),
                                TapStream {
                                    spec,
                                    builder: PageBuilder::new(hints.clone()),
                                    hints,
                                    skipped,
                                },
                            );
                        }
                    }
                }
                let page_records = self.tap.config.page_records;
                let Some(s) = self.streams.get_mut(&stream) else {
                    return Ok(());
                };
                if s.skipped {
                    return Ok(());
                }
                // Change-data-capture deletes: Singer's `_sdc_deleted_at`, Airbyte's
                // `_ab_cdc_deleted_at`.
                let deleted = ["_sdc_deleted_at", "_ab_cdc_deleted_at"]
                    .iter()
                    .any(|k| record.get(*k).is_some_and(|v| !v.is_null()));
                let original = Value::Object(record.clone());
                s.builder.push(record, &original, deleted);
                if s.builder.len() >= page_records {
                    self.flush(&stream);
                }
            }
            Message::State(value) => {
                self.flush_all();
                self.pending.push_back(Ok(StatefulEvent::State(value)));
            }
            Message::AirbyteState(state) => {
                self.flush_all();
                let document = self.airbyte_state.fold(&state);
                self.pending.push_back(Ok(StatefulEvent::State(document)));
            }
            Message::Log { level, message } => {
                let (connection, tap) = (&self.tap.config.connection, self.tap.config.tap_name());
                if matches!(level.as_str(), "WARN" | "ERROR" | "FATAL") {
                    tracing::warn!(connection = %connection, tap = %tap, level = %level, line = %message, "tap log");
                } else {
                    tracing::debug!(connection = %connection, tap = %tap, level = %level, line = %message, "tap log");
                }
            }
            Message::Error { message } => {
                return Err(format!("the source reported an error: {message}"));
            }
            Message::Catalog(_) | Message::Ignored => {}
        }
        Ok(())
    }

    /// The buffered records of `stream` as a page event.
    fn flush(&mut self, stream: &str) {
        let Some(s) = self.streams.get_mut(stream) else {
            return;
        };
        if s.builder.is_empty() {
            return;
        }
        let builder = std::mem::replace(&mut s.builder, PageBuilder::new(s.hints.clone()));
        let url = format!(
            "{} stdout up to line {}",
            self.tap.config.tap_name(),
            self.line
        );
        let event = match builder.finish() {
            Ok((batch, coerced)) => Ok(StatefulEvent::Page {
                stream: s.spec.clone(),
                page: Page {
                    batch,
                    url,
                    coerced,
                    cursor: None,
                },
            }),
            Err(e) => Err(SourceError::MalformedPage {
                connection: self.tap.config.connection.clone(),
                url,
                reason: e.to_string(),
            }),
        };
        self.pending.push_back(event);
    }

    fn flush_all(&mut self) {
        let mut names: Vec<String> = self.streams.keys().cloned().collect();
        names.sort();
        for n in names {
            self.flush(&n);
        }
    }
}

impl Source for Tap {
    fn vendor(&self) -> &'static str {
        self.vendor
    }

    /// The connection's streams; the tap's own are learnt while it runs.
    fn streams(&self) -> Vec<StreamSpec> {
        self.config
            .streams
            .iter()
            .map(|s| self.spec(s, &[], None))
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, _from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let e = SourceError::Config {
            connection: self.config.connection.clone(),
            reason: format!(
                "a {} tap is read whole, not stream by stream ({}): sync the connection",
                self.vendor, stream.name
            ),
        };
        stream::once(async move { Err(e) }).boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        (0, 0)
    }

    fn stateful(&self) -> Option<&dyn StatefulSource> {
        Some(self)
    }
}

impl StatefulSource for Tap {
    fn read_all<'a>(&'a self, state: Option<Value>) -> BoxStream<'a, Result<StatefulEvent>> {
        stream::once(self.start(state))
            .map(|started| match started {
                Ok(run) => run.into_events(),
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            })
            .flatten()
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_catalogs_give_schemas_and_top_level_keys() {
        let catalog = json!({"streams": [
            {"stream": {"name": "users", "json_schema": {"properties": {"id": {"type": "integer"}}},
                        "source_defined_primary_key": [["id"]]},
             "sync_mode": "incremental", "destination_sync_mode": "append_dedup"},
            {"stream": {"name": "events", "json_schema": {}}, "primary_key": [["a", "b"]]}
        ]});
        let s = configured_streams(&catalog);
        assert_eq!(s["users"].1, ["id"]);
        assert!(s["events"].1.is_empty());
    }

    #[test]
    fn private_files_are_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        write_private(&p, &json!({"k": 1})).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
