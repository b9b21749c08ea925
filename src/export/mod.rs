//! Warehouse exports: datasets of the lake loaded into Snowflake or BigQuery.
//!
//! ```text
//! lake (Delta, version v) ─▶ stage: <ws>/<layer.table>/v<v>/part-*.parquet ─▶ load table ─▶ target
//!                                   (object store, or the --plan folder)      COPY / load job   MERGE / INSERT
//! ```
//!
//! - [`typemap`]: Arrow → Snowflake / BigQuery types and which target types may hold them.
//! - [`stage`]: the Parquet files of one dataset version.
//! - [`snowflake`]: DDL, `PUT`, `COPY INTO`, `MERGE`, and the SQL API v2 client.
//! - [`snowflake_connector`]: Snowflake's driver protocol (login, query, `PUT` uploads).
//! - [`bigquery`]: schema JSON, load and query jobs, and the REST client.
//! - [`run_export`]: select, skip versions already exported, stage, load, record in
//!   `ops.exports`.
//!
//! Both warehouses are spoken to over their documented REST APIs with the crate's one reqwest
//! client: the driver crates available (`snowflake-api`, `gcp-bigquery-client`) pull a second
//! reqwest major, a second Arrow/object_store family or tonic, and `snowflake-connector-rs`
//! (1.1) runs no `PUT` file transfer and its key-pair auth pulls the RustCrypto RSA stack
//! (`rsa`, `pkcs8`) beside aws-lc-rs; so Snowflake's driver protocol is implemented here in
//! [`snowflake_connector`], small: login, query, result polling, Arrow/JSON rows, `PUT` to a
//! presigned URL. JWTs are signed with `jsonwebtoken` on the aws-lc-rs rustls already brings.

pub mod bigquery;
pub mod config;
mod error;
pub mod http;
pub mod keys;
mod record;
pub mod snowflake;
pub mod snowflake_connector;
pub mod stage;
pub mod typemap;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use datafusion::prelude::{SessionContext, col, lit};

pub use config::{
    BigQueryConfig, ExportConfig, ExportMode, SnowflakeApi, SnowflakeAuth, SnowflakeConfig,
};
pub use error::{ExportError, Result};
pub use record::{EXPORTS_DATASET, last_exported_version};
pub use stage::{Stage, StagedFile};

use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId};
use crate::project::{Project, WORKSPACE_COLUMN};

/// The workspace key of an export of every workspace's rows.
pub const ALL_WORKSPACES: &str = "_all";

/// What `revlake export` does.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `snowflake` or `bigquery`: the kind of target wanted.
    pub warehouse: String,
    /// The `[exports.NAME]` to use; default: the only one of that kind.
    pub target: Option<String>,
    /// Dataset selectors (`staging.*`, `marts.deals`, `deals`); default: the target's.
    pub select: Vec<String>,
    /// Only this workspace's rows (default: every workspace).
    pub workspace: Option<WorkspaceId>,
    /// Overrides the target's mode.
    pub mode: Option<ExportMode>,
    /// Write files, SQL and job JSON to this folder instead of loading.
    pub plan: Option<PathBuf>,
    /// Object-store options for the stage (as the lake takes them).
    pub storage_options: HashMap<String, String>,
}

/// One dataset, staged, ready to load.
#[derive(Debug, Clone)]
pub struct DatasetLoad {
    pub dataset: DatasetRef,
    pub version: i64,
    /// The table name in the warehouse (prefix + the dataset's table).
    pub table: String,
    /// The columns of the staged files.
    pub schema: SchemaRef,
    pub primary_key: Vec<String>,
    /// Path of the files' folder under the stage root.
    pub prefix: String,
    pub files: Vec<StagedFile>,
    pub workspace: Option<WorkspaceId>,
    pub mode: ExportMode,
}

impl DatasetLoad {
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// What happened to one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    /// This version is already in the target table.
    Skipped,
    /// Written to the plan folder only.
    Planned,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Skipped => "skipped",
            Status::Planned => "planned",
            Status::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one dataset.
#[derive(Debug, Clone)]
pub struct DatasetOutcome {
    pub dataset: DatasetRef,
    pub version: i64,
    pub target_table: String,
    pub mode: ExportMode,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    pub status: Status,
    pub error: Option<String>,
    /// Statements run (Snowflake) or job bodies sent (BigQuery), in order.
    pub requests: usize,
}

/// One `revlake export`.
#[derive(Debug, Clone)]
pub struct ExportRun {
    pub export_id: String,
    pub target: String,
    pub warehouse: &'static str,
    pub outcomes: Vec<DatasetOutcome>,
    /// The version of `ops.exports` the run committed (none for a plan).
    pub recorded_version: Option<i64>,
    /// The first error, after which no further dataset was exported.
    pub error: Option<String>,
}

/// Finds the `[exports.NAME]` to use: `name` if given, else the only one of `kind`.
pub fn find_target<'a>(
    project: &'a Project,
    kind: &str,
    name: Option<&str>,
) -> Result<(String, &'a ExportConfig)> {
    let all: Vec<(&String, &ExportConfig)> = project
        .pipelines
        .values()
        .flat_map(|p| p.file.exports.iter())
        .collect();
    let config_err = |reason: String| ExportError::Config {
        target: name.unwrap_or(kind).to_string(),
        reason,
    };
    if let Some(name) = name {
        let (n, c) = all
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .ok_or_else(|| {
                config_err(format!(
                    "no [exports.{name}] in pipelines/*.toml (known: {})",
                    names(&all)
                ))
            })?;
        if c.kind() != kind {
            return Err(config_err(format!(
                "[exports.{n}] is a {} target, not {kind}",
                c.kind()
            )));
        }
        return Ok(((*n).clone(), *c));
    }
    let of_kind: Vec<_> = all.iter().filter(|(_, c)| c.kind() == kind).collect();
    match of_kind.as_slice() {
        [(n, c)] => Ok(((*n).clone(), *c)),
        [] => Err(config_err(format!(
            "no {kind} target: add an [exports.NAME] section with type = \"{kind}\" to a pipeline file (known: {})",
            names(&all)
        ))),
        _ => Err(config_err(format!(
            "several {kind} targets ({}): choose one with --target",
            of_kind
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `MERGE` of a load table into its target on the primary key: matched rows get every other
/// column, new keys are inserted. `into` is `"MERGE INTO"` (Snowflake) or `"MERGE"`
/// (BigQuery); `set_target` qualifies the updated columns (`"t."` in Snowflake, `""` in
/// BigQuery, which refuses a qualified SET target); `quote` quotes an identifier.
pub(crate) fn merge_sql(
    into: &str,
    target: &str,
    load: &str,
    load_schema: &arrow::datatypes::Schema,
    key: &[String],
    set_target: &str,
    quote: impl Fn(&str) -> String,
) -> String {
    let on = key
        .iter()
        .map(|k| format!("t.{0} = s.{0}", quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let names: Vec<String> = load_schema
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect();
    let set: Vec<String> = load_schema
        .fields()
        .iter()
        .filter(|f| !key.contains(f.name()))
        .map(|f| format!("{set_target}{0} = s.{0}", quote(f.name())))
        .collect();
    let matched = if set.is_empty() {
        String::new()
    } else {
        format!("\nWHEN MATCHED THEN UPDATE SET {}", set.join(", "))
    };
    let values: Vec<String> = names.iter().map(|n| format!("s.{n}")).collect();
    format!(
        "{into} {target} AS t\nUSING {load} AS s\nON {on}{matched}\nWHEN NOT MATCHED THEN INSERT ({})\nVALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

fn names(all: &[(&String, &ExportConfig)]) -> String {
    if all.is_empty() {
        return "none".into();
    }
    all.iter()
        .map(|(n, c)| format!("{n} ({})", c.kind()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The credential table no selector exports (`ops.*` skips it; naming it is an error).
const NEVER_EXPORTED: &str = "ops.api_keys";

/// The datasets of the lake `selectors` name; a selector that names none is an error listing
/// the datasets the lake has. `ops.*` is only exported when named, and never `ops.api_keys`.
pub fn select_datasets(available: &[DatasetRef], selectors: &[String]) -> Result<Vec<DatasetRef>> {
    let mut out = BTreeSet::new();
    let selectors: Vec<&str> = selectors
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for selector in selectors {
        if selector == NEVER_EXPORTED {
            return Err(ExportError::Config {
                target: "--select".into(),
                reason: format!(
                    "{NEVER_EXPORTED} holds the API keys' hashes and is never exported"
                ),
            });
        }
        let matched: Vec<&DatasetRef> = available
            .iter()
            .filter(|d| d.to_string() != NEVER_EXPORTED)
            .filter(|d| match selector.split_once('.') {
                Some((layer, "*")) => d.layer.as_str() == layer,
                Some(_) => d.to_string() == selector,
                None => d.table == selector && d.layer != Layer::Ops,
            })
            .collect();
        if matched.is_empty() {
            return Err(ExportError::UnknownDataset {
                selector: selector.to_string(),
                known: available.iter().map(|d| d.to_string()).collect(),
            });
        }
        out.extend(matched.into_iter().cloned());
    }
    Ok(out.into_iter().collect())
}

/// Runs an export (or writes its plan); records every dataset's outcome in `ops.exports`.
pub async fn run_export(
    lake: &Lake,
    project: &Project,
    options: &ExportOptions,
) -> Result<ExportRun> {
    let (target, config) = find_target(project, &options.warehouse, options.target.as_deref())?;
    let config = config.clone();
    let mode = options.mode.unwrap_or(config.mode());
    let selectors = if options.select.is_empty() {
        config.select().to_vec()
    } else {
        options.select.clone()
    };
    let available = lake.datasets().await?;
    let datasets = select_datasets(&available, &selectors)?;
    let export_id = uuid::Uuid::new_v4().to_string();
    let mut run = ExportRun {
        export_id: export_id.clone(),
        target: target.clone(),
        warehouse: config.kind(),
        outcomes: Vec::new(),
        recorded_version: None,
        error: None,
    };
    let plan_dir = options.plan.clone();
    // The connector protocol PUTs the files to an internal stage from a local folder, removed
    // when the run ends.
    let mut local_files: Option<tempfile::TempDir> = None;
    let stage = match (&plan_dir, config.stage_url()) {
        (Some(dir), _) => Stage::open(&dir.join("files").display().to_string(), &HashMap::new())?,
        (None, Some(url)) => {
            let mut opts = lake.storage_options().clone();
            opts.extend(options.storage_options.clone());
            Stage::open(url, &opts)?
        }
        (None, None) if matches!(&config, ExportConfig::Snowflake(c) if c.api == SnowflakeApi::Connector) =>
        {
            let dir = tempfile::Builder::new()
                .prefix("revlake-export-")
                .tempdir()
                .map_err(|e| ExportError::Stage {
                    dataset: "(stage)".into(),
                    location: std::env::temp_dir().display().to_string(),
                    reason: format!("creating a folder for the files to PUT: {e}"),
                })?;
            let stage = Stage::open(&dir.path().display().to_string(), &HashMap::new())?;
            local_files = Some(dir);
            stage
        }
        (None, None) => {
            return Err(ExportError::Config {
                target,
                reason: match config {
                    ExportConfig::Snowflake(_) => "no stage_url: the SQL API cannot PUT files to an internal stage; set api = \"connector\", or create an external stage on a bucket and set stage_url to its URL, or use --plan to get PUT commands for SnowSQL".into(),
                    ExportConfig::Bigquery(_) => "no stage_url: BigQuery loads from GCS; set stage_url = \"gs://bucket/prefix/\"".into(),
                },
            });
        }
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| ExportError::Config {
            target: target.clone(),
            reason: format!("building the HTTP client: {e}"),
        })?;
    // Credentials are resolved before any file is written: a missing one fails fast.
    let client = match (&plan_dir, &config) {
        (Some(_), _) => Client::Plan,
        (None, ExportConfig::Snowflake(c)) => Client::Snowflake(Box::new(
            snowflake::SnowflakeClient::connect(&target, c, http).await?,
        )),
        (None, ExportConfig::Bigquery(c)) => Client::BigQuery(Box::new(
            bigquery::BigQueryClient::connect(&target, c, http).await?,
        )),
    };
    let ws_key = options
        .workspace
        .as_ref()
        .map_or(ALL_WORKSPACES.to_string(), |w| w.to_string());
    let mut first_error: Option<ExportError> = None;
    for dataset in datasets {
        let span = tracing::info_span!("export", dataset = %dataset, target = %target);
        let _enter = span.enter();
        let outcome = export_one(
            lake,
            project,
            &config,
            &target,
            &dataset,
            mode,
            options,
            &stage,
            &client,
            &ws_key,
            plan_dir.as_deref(),
        )
        .await;
        match outcome {
            Ok(o) => run.outcomes.push(o),
            Err((o, e)) => {
                if let Some(o) = o {
                    run.outcomes.push(o);
                }
                run.error = Some(e.to_string());
                first_error = Some(e);
                break;
            }
        }
    }
    drop(local_files);
    if plan_dir.is_none() && !run.outcomes.is_empty() {
        run.recorded_version = record::record(lake, &run, &ws_key).await?;
    }
    match first_error {
        Some(e) if run.outcomes.is_empty() => Err(e),
        _ => Ok(run),
    }
}

enum Client {
    Plan,
    Snowflake(Box<snowflake::SnowflakeClient>),
    BigQuery(Box<bigquery::BigQueryClient>),
}

#[allow(clippy::too_many_arguments)]
async fn export_one(
    lake: &Lake,
    project: &Project,
    config: &ExportConfig,
    target: &str,
    dataset: &DatasetRef,
    mode: ExportMode,
    options: &ExportOptions,
    stage: &Stage,
    client: &Client,
    ws_key: &str,
    plan_dir: Option<&Path>,
) -> std::result::Result<DatasetOutcome, (Option<DatasetOutcome>, ExportError)> {
    let table = lake
        .load(dataset, None)
        .await
        .map_err(|e| (None, e.into()))?;
    let version = table.version().map_or(-1, |v| v as i64);
    let primary_key = project
        .schema(dataset)
        .map(|s| s.primary_key.clone())
        .unwrap_or_default();
    let table_prefix = match config {
        ExportConfig::Snowflake(c) => &c.table_prefix,
        ExportConfig::Bigquery(c) => &c.table_prefix,
    };
    let table_name = format!("{table_prefix}{}", dataset.table);
    let target_table = match config {
        ExportConfig::Snowflake(c) => format!(
            "{}.{}.{}",
            c.database,
            c.schema,
            snowflake::ident(&table_name)
        ),
        ExportConfig::Bigquery(c) => format!("{}.{}.{table_name}", c.project, c.dataset),
    };
    let mut outcome = DatasetOutcome {
        dataset: dataset.clone(),
        version,
        target_table: target_table.clone(),
        mode,
        rows: 0,
        files: 0,
        bytes: 0,
        status: Status::Failed,
        error: None,
        requests: 0,
    };
    if mode == ExportMode::Merge && primary_key.is_empty() {
        return Err((
            None,
            ExportError::Config {
                target: target.to_string(),
                reason: format!(
                    "{dataset} has no primary_key in schemas/{dataset}.toml, so it cannot be merged: declare one or use --mode append or replace"
                ),
            },
        ));
    }
    if plan_dir.is_none() {
        let last = last_exported_version(lake, target, dataset, ws_key, &target_table)
            .await
            .map_err(|e| (None, e))?;
        if last == Some(version) {
            tracing::info!(version, "this version is already in the target; skipped");
            outcome.status = Status::Skipped;
            return Ok(outcome);
        }
    }
    let fail = |mut outcome: DatasetOutcome, e: ExportError| {
        outcome.status = Status::Failed;
        outcome.error = Some(e.to_string());
        (Some(outcome), e)
    };
    // Read the pinned version, scoped to the workspace.
    let ctx = SessionContext::new();
    let read = async {
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|source| lake.delta_err("register", dataset, source))?;
        let read_err = |source| ExportError::Read {
            dataset: dataset.to_string(),
            source: Box::new(source),
        };
        let provider = table.table_provider().await.map_err(read_err)?;
        let mut df = ctx.read_table(provider).map_err(read_err)?;
        if let Some(ws) = &options.workspace {
            df = df
                .filter(col(WORKSPACE_COLUMN).eq(lit(ws.as_str())))
                .map_err(read_err)?;
        }
        df.execute_stream().await.map_err(read_err)
    };
    let stream = match read.await {
        Ok(s) => s,
        Err(e) => return Err(fail(outcome, e)),
    };
    let maps_as_json = matches!(config, ExportConfig::Bigquery(_));
    let schema = stage::staged_schema(&stream.schema(), maps_as_json);
    let prefix = format!("{ws_key}/{dataset}/v{version}");
    let files = match stage
        .write(&dataset.to_string(), &prefix, stream, maps_as_json)
        .await
    {
        Ok(f) => f,
        Err(e) => return Err(fail(outcome, e)),
    };
    let load = DatasetLoad {
        dataset: dataset.clone(),
        version,
        table: table_name,
        schema,
        primary_key,
        prefix,
        files,
        workspace: options.workspace.clone(),
        mode,
    };
    outcome.rows = load.rows();
    outcome.files = load.files.len();
    outcome.bytes = load.bytes();
    let result = match (client, config) {
        (Client::Plan, _) => match plan_dir {
            Some(dir) => write_plan(dir, config, &load, stage).map(|n| (n, Status::Planned)),
            None => Ok((0, Status::Planned)),
        },
        (Client::Snowflake(c), _) => c.load(&load).await.map(|s| (s.len(), Status::Succeeded)),
        (Client::BigQuery(c), _) => c.load(&load).await.map(|s| (s.len(), Status::Succeeded)),
    };
    match result {
        Ok((requests, status)) => {
            outcome.requests = requests;
            outcome.status = status;
            Ok(outcome)
        }
        Err(e) => Err(fail(outcome, e)),
    }
}

/// Writes the SQL (Snowflake) or schema and job JSON (BigQuery) of one dataset's load into
/// the plan folder; returns the number of statements or jobs.
fn write_plan(
    dir: &Path,
    config: &ExportConfig,
    load: &DatasetLoad,
    stage: &Stage,
) -> Result<usize> {
    let write = |name: String, text: String| -> Result<()> {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ExportError::Plan {
                path: parent.display().to_string(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ExportError::Plan {
            path: path.display().to_string(),
            source,
        })
    };
    match config {
        ExportConfig::Snowflake(c) => {
            let sql = snowflake::SnowflakeSql { config: c, load };
            let statements = sql.plan(Some(stage.url()))?;
            let text = statements
                .iter()
                .map(|s| {
                    if s.starts_with("--") {
                        s.clone()
                    } else {
                        format!("{s};")
                    }
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            write(
                format!("snowflake/{}.sql", load.dataset),
                format!("{text}\n"),
            )?;
            Ok(statements.len())
        }
        ExportConfig::Bigquery(c) => {
            let jobs = bigquery::BigQueryJobs { config: c, load };
            let schema = bigquery::schema_json(load)?;
            write(
                format!("bigquery/{}.schema.json", load.dataset),
                pretty(&schema["fields"]),
            )?;
            let mut list = Vec::new();
            if jobs.via_load_table(false) {
                list.push(jobs.load_job(
                    &jobs.load_table_id(),
                    "WRITE_TRUNCATE",
                    "revlake_load",
                )?);
                let sql = jobs.apply_sql();
                write(
                    format!("bigquery/{}.sql", load.dataset),
                    format!("{sql};\n"),
                )?;
                list.push(jobs.query_job(&sql, &format!("revlake_{}", load.mode.as_str())));
            } else {
                let disposition = if load.mode == ExportMode::Replace {
                    "WRITE_TRUNCATE"
                } else {
                    "WRITE_APPEND"
                };
                list.push(jobs.load_job(&load.table, disposition, "revlake_load")?);
            }
            write(
                format!("bigquery/{}.jobs.json", load.dataset),
                pretty(&serde_json::json!(list)),
            )?;
            Ok(list.len())
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    /// `staging.deals` v3 of workspace acme staged in one file.
    pub(crate) fn sample_load(mode: ExportMode, workspace: Option<WorkspaceId>) -> DatasetLoad {
        let schema = Arc::new(Schema::new(vec![
            Field::new("workspace_id", DataType::Utf8, false),
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new(
                "closed_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        DatasetLoad {
            dataset: "staging.deals".parse().unwrap(),
            version: 3,
            table: "deals".into(),
            schema,
            primary_key: vec!["workspace_id".into(), "id".into()],
            prefix: "acme/staging.deals/v3".into(),
            files: vec![StagedFile {
                path: "acme/staging.deals/v3/part-00000.parquet".into(),
                url: "gs://b/acme/staging.deals/v3/part-00000.parquet".into(),
                rows: 2,
                bytes: 100,
            }],
            workspace,
            mode,
        }
    }

    #[test]
    fn selectors_match_layers_tables_and_names_and_list_the_known_ones() {
        let available: Vec<DatasetRef> = [
            "marts.alerts",
            "ops.sync_log",
            "ops.api_keys",
            "staging.deals",
            "staging.accounts",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let got = select_datasets(&available, &["staging.*".into()]).unwrap();
        assert_eq!(got.len(), 2);
        // The API keys' hashes never leave the lake.
        let got = select_datasets(&available, &["ops.*".into()]).unwrap();
        assert_eq!(
            got.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["ops.sync_log"]
        );
        let e = select_datasets(&available, &["ops.api_keys".into()]).unwrap_err();
        assert!(e.to_string().contains("never exported"), "{e}");
        let got = select_datasets(&available, &["deals,marts.alerts".into()]).unwrap();
        assert_eq!(
            got.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            // Data-flow order: staging before marts.
            ["staging.deals", "marts.alerts"]
        );
        let e = select_datasets(&available, &["staging.dealz".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("staging.dealz") && e.contains("staging.deals, staging.accounts")
                || e.contains("known: marts.alerts"),
            "{e}"
        );
    }
}
