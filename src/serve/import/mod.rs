//! The import endpoints: connecting a vendor (the connection written into the workspace's
//! pipeline file, as `revlake connect` does), syncing it in the background (the code path of
//! `revlake sync`, logged to `ops.sync_log`), its status, and file uploads ([`files`]).
//!
//! ```text
//! POST /api/import/connect ─validate (vendor, names, env vars)─▶ pipelines/*.toml ─▶ sync job
//! POST /api/import/sync/{id} ─▶ job ─▶ sources::sync::sync_source ─▶ raw.* + ops.sync_log
//! GET  /api/import/status/{id} ◀─ ops.sync_log (the workspace's rows of the connection)
//! ```
//!
//! Credentials are given by reference only: the body names environment variables of the
//! server, never secrets; a value that looks like a secret is refused and never echoed.
//! Connections are found only among the pipelines of the key's workspace: another workspace's
//! connection answers 404 like a missing one.

pub mod files;
pub mod pipeline;
mod preview;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use datafusion::prelude::{SessionContext, col, lit};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use self::pipeline::PipelineEditError;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::jobs::{JobKind, JobOutcome};
use super::keys::Principal;
use super::rows::to_json_rows;
use super::state::AppState;
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId};
use crate::project::WORKSPACE_COLUMN;
use crate::sources::registry;
use crate::sources::source::Connection;
use crate::sources::sync::{SyncOptions, sync_source};

/// Serializes edits of pipeline files by this server.
static PIPELINE_EDIT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sources the API does not connect: they run a local program named in the pipeline file,
/// which only the operator may configure.
const LOCAL_PROGRAM_SOURCES: &[&str] = &["singer", "airbyte"];

/// `POST /api/import/connect`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// The vendor (`revlake sources` lists them): pipedrive, hubspot, salesforce, stripe, ...
    pub source: String,
    /// The connection's name: letters, digits, `_` and `-` (default: the vendor's name).
    pub name: Option<String>,
    /// Credential name → the NAME of the server's environment variable holding it
    /// (`{"api_token": "PIPEDRIVE_TOKEN"}`). Never the secret itself.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// Streams to sync (default: the vendor's default streams).
    pub streams: Option<Vec<String>>,
    /// API root for sandboxes, regional hosts and proxies; accepted only when the server runs
    /// with `--allow-connection-base-url`.
    pub base_url: Option<String>,
    /// Start a first sync now (default true).
    pub sync: Option<bool>,
}

/// The saved connection and its first sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectResponse {
    /// The connection's id (its name in the pipeline file).
    pub connection_id: String,
    pub source: String,
    /// `connected`.
    pub status: String,
    pub sync_started: bool,
    /// The first sync's job (`GET /api/jobs/{id}`).
    pub job_id: Option<String>,
}

/// `POST /api/import/sync/{connection_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Ignore the stored cursors and re-read everything.
    #[serde(default)]
    pub full: bool,
    /// Only these streams (default: the connection's).
    #[serde(default)]
    pub streams: Vec<String>,
}

/// A started sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStarted {
    pub job_id: String,
}

/// A stream's last run, from `ops.sync_log`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamStatus {
    pub stream: String,
    pub dataset: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Records the last run landed.
    pub records: i64,
    #[schema(value_type = String, format = DateTime)]
    pub last_sync: DateTime<Utc>,
    /// The cursor the last run committed (incremental syncs resume there).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cursor: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// A failed stream run.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncErrorEntry {
    pub stream: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    pub error: String,
}

/// A connection's syncs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportStatus {
    pub connection_id: String,
    pub source: String,
    /// Records landed over every logged run.
    pub records_synced: i64,
    /// When the last run ended (none: never synced).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sync: Option<DateTime<Utc>>,
    /// The errors of the streams whose last run failed.
    pub errors: Vec<SyncErrorEntry>,
    pub streams: Vec<StreamStatus>,
    /// A sync of it queued or running now.
    pub running_job: Option<String>,
}

fn no_project() -> ApiError {
    ApiError::conflict(
        "no_project",
        "this server was started without a project folder: connections cannot be added or synced (run `revlake serve` with --project)",
    )
}

fn pipeline_error(e: PipelineEditError) -> ApiError {
    match e {
        PipelineEditError::Exists { name, .. } => ApiError::conflict(
            "connection_exists",
            format!("the workspace already has a connection `{name}`: pick another name"),
        ),
        other => ApiError::internal("saving the connection", &other),
    }
}

/// Why `var` is not the name of an environment variable (upper-case letters, digits and `_`,
/// not starting with a digit, at most 100 characters, no long digit runs), if it is not. A
/// value failing this is most likely a secret pasted in its place.
fn env_var_name_problem(var: &str) -> Option<&'static str> {
    if var.is_empty() {
        return Some("is empty");
    }
    if var.len() > 100 {
        return Some("is longer than an environment variable name");
    }
    if var.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("starts with a digit");
    }
    if !var
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Some("has characters other than A-Z, 0-9 and `_`");
    }
    let mut run = 0;
    for c in var.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 6 {
            return Some("has a long run of digits");
        }
    }
    None
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The connection `id` of `workspace`, from the project's pipeline files.
fn find_connection(
    state: &AppState,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<Connection, ApiError> {
    let root = state.config.project_root.as_ref().ok_or_else(no_project)?;
    let project =
        pipeline::load(root).map_err(|e| ApiError::internal("loading the project", &e))?;
    pipeline::connections(&project, workspace)
        .into_iter()
        .map(|(c, _)| c)
        .find(|c| c.name == id)
        .ok_or_else(|| ApiError::not_found("connection", id))
}

/// Connect a vendor: save the connection in the workspace's pipeline file and start its first
/// sync.
#[utoipa::path(
    post,
    path = "/api/import/connect",
    tag = "imports",
    request_body = ConnectRequest,
    responses(
        (status = 201, description = "Saved (and syncing)", body = ConnectResponse),
        (status = 400, description = "Unknown source, bad name, a secret instead of an environment variable name, a variable not set, an unknown stream", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 409, description = "A connection of that name exists, or the server has no project", body = ErrorBody),
    )
)]
pub async fn connect(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(request): ApiJson<ConnectRequest>,
) -> Result<(StatusCode, ApiJson<ConnectResponse>), ApiError> {
    let root = state.config.project_root.clone().ok_or_else(no_project)?;
    let vendor = registry::vendor(&request.source)
        .map_err(|e| ApiError::bad_request("unknown_source", e.to_string()))?;
    if LOCAL_PROGRAM_SOURCES.contains(&vendor.name) {
        return Err(ApiError::bad_request(
            "source_not_allowed",
            format!(
                "{} runs a local program: add it to the pipeline file on the server (`revlake connect`), not through the API",
                vendor.name
            ),
        ));
    }
    let name = request.name.clone().unwrap_or_else(|| vendor.name.into());
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "bad_name",
            format!("connection name {name:?}: use 1 to 64 letters, digits, `_` and `-`"),
        ));
    }
    let mut credentials = toml::Table::new();
    for (credential, var) in &request.credentials {
        if let Some(problem) = env_var_name_problem(var) {
            // The value is never echoed: it may be the secret itself.
            return Err(ApiError::bad_request(
                "secret_inline",
                format!(
                    "credentials.{credential}: give the NAME of an environment variable of the server (like PIPEDRIVE_TOKEN), never the secret itself; the value given {problem}"
                ),
            ));
        }
        credentials.insert(credential.clone(), toml::Value::String(var.clone()));
    }
    let mut table = toml::Table::new();
    table.insert("source".into(), vendor.name.into());
    if let Some(url) = &request.base_url {
        if !state.config.allow_connection_base_url {
            return Err(ApiError::bad_request(
                "base_url_not_allowed",
                "base_url: this server connects only to the vendors' public APIs (start it with --allow-connection-base-url to allow other hosts)",
            ));
        }
        let parsed = url::Url::parse(url).map_err(|e| {
            ApiError::bad_request(
                "bad_base_url",
                format!("base_url {url:?} is not a URL: {e}"),
            )
        })?;
        table.insert("base_url".into(), parsed.as_str().into());
    }
    if let Some(streams) = request.streams.as_ref().filter(|s| !s.is_empty()) {
        table.insert(
            "streams".into(),
            toml::Value::Array(streams.iter().map(|s| s.as_str().into()).collect()),
        );
    }
    table.insert("credentials".into(), credentials.into());
    // Checked the way the pipeline loader and the connector will: opening it checks the
    // streams and reads every credential from its environment variable.
    let mut connection: Connection = table.clone().try_into().map_err(|e: toml::de::Error| {
        ApiError::bad_request(
            "bad_connection",
            format!("the connection is not valid: {e}"),
        )
    })?;
    connection.name = name.clone();
    registry::open(&connection)
        .map_err(|e| ApiError::bad_request("bad_connection", e.to_string()))?;

    let workspace = principal.workspace.clone();
    {
        let _edit = PIPELINE_EDIT.lock().await;
        let (root, ws, n) = (root.clone(), workspace.clone(), name.clone());
        let path =
            tokio::task::spawn_blocking(move || pipeline::add_connection(&root, &ws, &n, table))
                .await
                .map_err(|e| ApiError::internal("saving the connection", &e))?
                .map_err(pipeline_error)?;
        tracing::info!(connection = %name, source = vendor.name, file = %path.display(), "connection saved");
    }
    let job_id = request
        .sync
        .unwrap_or(true)
        .then(|| start_sync(&state, &workspace, connection, SyncOptions::default()));
    Ok((
        StatusCode::CREATED,
        ApiJson(ConnectResponse {
            connection_id: name,
            source: vendor.name.to_string(),
            status: "connected".into(),
            sync_started: job_id.is_some(),
            job_id,
        }),
    ))
}

fn start_sync(
    state: &Arc<AppState>,
    workspace: &WorkspaceId,
    connection: Connection,
    options: SyncOptions,
) -> String {
    let target = connection.name.clone();
    let work = sync_job(
        state.lake.clone(),
        state.config.project_root.clone(),
        workspace.clone(),
        connection,
        options,
    );
    state.jobs.start(workspace, JobKind::Sync, &target, work)
}

/// One sync, as `revlake sync NAME` runs it: every selected stream landed and logged to
/// `ops.sync_log`, then the checks of the raw tables that landed.
async fn sync_job(
    lake: Lake,
    project_root: Option<PathBuf>,
    workspace: WorkspaceId,
    connection: Connection,
    options: SyncOptions,
) -> JobOutcome {
    let source = registry::open(&connection).map_err(|e| (None, e.to_string()))?;
    let outcomes = sync_source(
        &lake,
        source.as_ref(),
        &connection,
        &workspace,
        &options,
        &mut |_| {},
    )
    .await
    .map_err(|e| (None, e.to_string()))?;
    let landed: Vec<DatasetRef> = outcomes
        .iter()
        .filter(|o| o.error.is_none())
        .filter_map(|o| o.dataset.parse().ok())
        .collect();
    let mut checks = Value::Null;
    if let Some(root) = &project_root
        && !landed.is_empty()
    {
        match pipeline::load(root) {
            Ok(project) => {
                match crate::quality::check_written(&lake, &project, &landed, Some(&workspace))
                    .await
                {
                    Ok(Some(run)) => {
                        checks = json!({
                            "run_id": run.run_id,
                            "critical_failed": run.failed_at(crate::quality::Severity::Critical),
                        })
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "checks after the sync failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "checks after the sync skipped"),
        }
    }
    let records: u64 = outcomes.iter().map(|o| o.records).sum();
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| format!("{}: {e}", o.stream)))
        .collect();
    let result = json!({ "records": records, "streams": outcomes, "checks": checks });
    if failed.is_empty() {
        Ok(result)
    } else {
        Err((
            Some(result),
            format!(
                "{} of {} streams failed (see ops.sync_log): {}",
                failed.len(),
                outcomes.len(),
                failed.join("; ")
            ),
        ))
    }
}

/// Sync a connection of the workspace in the background.
#[utoipa::path(
    post,
    path = "/api/import/sync/{connection_id}",
    tag = "imports",
    params(("connection_id" = String, Path, description = "The connection's name")),
    request_body = SyncRequest,
    responses(
        (status = 202, description = "Started", body = SyncStarted),
        (status = 400, description = "A stream the connection does not have, or its credentials are not set", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "No such connection in this workspace", body = ErrorBody),
        (status = 409, description = "A sync of it is running (its job id in the message)", body = ErrorBody),
    )
)]
pub async fn sync(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(connection_id): Path<String>,
    ApiJson(request): ApiJson<SyncRequest>,
) -> Result<(StatusCode, ApiJson<SyncStarted>), ApiError> {
    let workspace = principal.workspace;
    let connection = find_connection(&state, &workspace, &connection_id)?;
    let source = registry::open(&connection)
        .map_err(|e| ApiError::bad_request("bad_connection", e.to_string()))?;
    let have = source.streams();
    for want in &request.streams {
        if !have.iter().any(|s| s.name.eq_ignore_ascii_case(want)) {
            return Err(ApiError::bad_request(
                "unknown_stream",
                format!(
                    "connection {connection_id} has no stream {want:?}; it syncs: {}",
                    have.iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    drop(source);
    if let Some(job) = state.jobs.active(&workspace, JobKind::Sync, &connection_id) {
        return Err(ApiError::conflict(
            "sync_running",
            format!(
                "connection {connection_id} is being synced by job {}",
                job.id
            ),
        ));
    }
    let options = SyncOptions {
        full: request.full,
        streams: request.streams,
        ..SyncOptions::default()
    };
    let job_id = start_sync(&state, &workspace, connection, options);
    Ok((StatusCode::ACCEPTED, ApiJson(SyncStarted { job_id })))
}

/// A connection's syncs: records landed, the last sync, the errors of failed streams.
#[utoipa::path(
    get,
    path = "/api/import/status/{connection_id}",
    tag = "imports",
    params(("connection_id" = String, Path, description = "The connection's name")),
    responses(
        (status = 200, description = "Its syncs", body = ImportStatus),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "No such connection in this workspace", body = ErrorBody),
        (status = 409, description = "The server has no project", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(connection_id): Path<String>,
) -> Result<ApiJson<ImportStatus>, ApiError> {
    let workspace = principal.workspace;
    let connection = find_connection(&state, &workspace, &connection_id)?;
    let log = DatasetRef::new(Layer::Ops, "sync_log").expect("ops.sync_log is a valid name");
    let rows = read_rows(
        &state.lake,
        &log,
        &workspace,
        &[("connection", &connection_id)],
        &[
            "object",
            "dataset",
            "status",
            "records_processed",
            "ended_at",
            "cursor_after",
            "error",
        ],
    )
    .await?;
    #[derive(Deserialize)]
    struct Row {
        object: String,
        dataset: String,
        status: String,
        records_processed: i64,
        ended_at: DateTime<Utc>,
        cursor_after: Option<DateTime<Utc>>,
        error: Option<String>,
    }
    let rows: Vec<Row> =
        super::rows::typed(rows).map_err(|e| ApiError::internal("reading ops.sync_log", &e))?;
    let records_synced = rows.iter().map(|r| r.records_processed).sum();
    let last_sync = rows.iter().map(|r| r.ended_at).max();
    let mut latest: BTreeMap<String, &Row> = BTreeMap::new();
    for r in &rows {
        let newer = latest
            .get(&r.object)
            .is_none_or(|held| held.ended_at <= r.ended_at);
        if newer {
            latest.insert(r.object.clone(), r);
        }
    }
    let streams: Vec<StreamStatus> = latest
        .values()
        .map(|r| StreamStatus {
            stream: r.object.clone(),
            dataset: r.dataset.clone(),
            status: r.status.clone(),
            records: r.records_processed,
            last_sync: r.ended_at,
            cursor: r.cursor_after,
            error: r.error.clone(),
        })
        .collect();
    let errors = streams
        .iter()
        .filter_map(|s| {
            s.error.as_ref().map(|e| SyncErrorEntry {
                stream: s.stream.clone(),
                at: s.last_sync,
                error: e.clone(),
            })
        })
        .collect();
    Ok(ApiJson(ImportStatus {
        running_job: state
            .jobs
            .active(&workspace, JobKind::Sync, &connection_id)
            .map(|j| j.id),
        connection_id,
        source: connection.source,
        records_synced,
        last_sync,
        errors,
        streams,
    }))
}

/// `columns` of the workspace's rows of `dataset` (as of now, not a cached session) where each
/// `(column, value)` of `equal` holds; none when the table does not exist yet.
pub(super) async fn read_rows(
    lake: &Lake,
    dataset: &DatasetRef,
    workspace: &WorkspaceId,
    equal: &[(&str, &str)],
    columns: &[&str],
) -> Result<Vec<serde_json::Map<String, Value>>, ApiError> {
    let context = format!("reading {dataset}");
    let failed = |e: &dyn std::error::Error| ApiError::internal(&context, e);
    let Some(table) = lake.try_load(dataset).await.map_err(|e| failed(&e))? else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| failed(&e))?;
    let provider = table.table_provider().await.map_err(|e| failed(&e))?;
    let mut df = ctx
        .read_table(provider)
        .map_err(|e| failed(&e))?
        .filter(col(WORKSPACE_COLUMN).eq(lit(workspace.as_str())))
        .map_err(|e| failed(&e))?;
    for (column, value) in equal {
        df = df
            .filter(col(*column).eq(lit(*value)))
            .map_err(|e| failed(&e))?;
    }
    let batches = df
        .select_columns(columns)
        .map_err(|e| failed(&e))?
        .collect()
        .await
        .map_err(|e| failed(&e))?;
    to_json_rows(&batches).map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_pass_and_secrets_do_not() {
        for ok in ["PIPEDRIVE_TOKEN", "HUBSPOT_TOKEN_2", "_X", "SF_CLIENT_ID"] {
            assert_eq!(env_var_name_problem(ok), None, "{ok}");
        }
        for secret in [
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "pat-na1-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "TOKEN 123",
            "",
            "AKIA1234567890ABCDEF",
            "9ABC",
        ] {
            assert!(env_var_name_problem(secret).is_some(), "{secret}");
        }
    }

    #[test]
    fn connection_names_follow_the_clis_rule() {
        assert!(valid_name("crm-2_a"));
        assert!(!valid_name("crm 2"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
    }
}
