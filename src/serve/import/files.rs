//! File uploads: `POST /api/import/files` streams a multipart file to the lake's object store
//! (`_uploads/<workspace>/<upload_id>/<name>`, never whole in memory) and then either previews
//! it (`preview=true`: detected columns and types, the mapping to the target, duplicates
//! against the workspace's rows, a recommended strategy; nothing written to the target) or
//! imports it exactly as `revlake import` would (same builder, declared schema, batch in
//! `ops.import_batches`, the target's checks). A previewed upload is applied later by its id
//! (`POST /api/import/files/{upload_id}/apply`).
//!
//! Records that do not fit the target's columns refuse the whole upload (422, naming line and
//! column, nothing written) unless `quarantine=true`, which lands the rest and sets them aside
//! in `ops.quarantine` like the CLI.

use std::sync::Arc;

use axum::Extension;
use axum::extract::multipart::{Field, Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clap::ValueEnum;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::preview::{self, Preview, dry_run, file_error, refuse_bad_records};
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::project::DatasetSchema;
use crate::serve::error::{ApiError, ErrorBody};
use crate::serve::extract::ApiJson;
use crate::serve::keys::Principal;
use crate::serve::state::AppState;
use crate::sources::file::{
    FileFormat, ImportBuilder, ImportStrategy, ObjectMap, TextEncoding, parse_delimiter,
};

/// The folder of uploads under the lake root.
const UPLOADS: &str = "_uploads";
/// The options stored beside an upload.
const META: &str = "upload.json";
/// Longest text field accepted.
const MAX_FIELD: usize = 4096;

/// The import options of an upload (the multipart text fields, as `revlake import` flags).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportOptions {
    pub dataset: Option<String>,
    pub object: Option<String>,
    pub strategy: Option<String>,
    #[serde(default)]
    pub key: Vec<String>,
    pub format: Option<String>,
    pub encoding: Option<String>,
    pub delimiter: Option<String>,
    pub sheet: Option<String>,
    #[serde(default)]
    pub quarantine: bool,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

impl ImportOptions {
    fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        let value = value.trim().to_string();
        let opt = (!value.is_empty()).then(|| value.clone());
        match name {
            "dataset" => self.dataset = opt,
            "object" => self.object = opt,
            "strategy" => self.strategy = opt,
            "key" => {
                self.key = value
                    .split(',')
                    .map(|k| k.trim().to_string())
                    .filter(|k| !k.is_empty())
                    .collect()
            }
            "format" => self.format = opt,
            "encoding" => self.encoding = opt,
            "delimiter" => self.delimiter = opt,
            "sheet" => self.sheet = opt,
            "quarantine" => self.quarantine = flag(name, &value)?,
            other => {
                return Err(bad(
                    "bad_multipart",
                    format!(
                        "unknown form field `{other}` (fields: file, dataset, object, strategy, key, format, encoding, delimiter, sheet, quarantine, preview)"
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn strategy(&self) -> Result<ImportStrategy, ApiError> {
        match self.strategy.as_deref() {
            None => Ok(ImportStrategy::Replace),
            Some(s) => ImportStrategy::from_str(s, true).map_err(|_| {
                bad(
                    "bad_strategy",
                    format!("strategy `{s}`: use replace, merge or append"),
                )
            }),
        }
    }

    fn format(&self) -> Result<Option<FileFormat>, ApiError> {
        self.format
            .as_deref()
            .map(|f| {
                FileFormat::from_str(f, true).map_err(|_| {
                    bad(
                        "bad_format",
                        format!("format `{f}`: use csv, tsv, json, ndjson, xlsx or parquet"),
                    )
                })
            })
            .transpose()
    }

    fn encoding(&self) -> Result<Option<TextEncoding>, ApiError> {
        self.encoding
            .as_deref()
            .map(|e| {
                TextEncoding::from_str(e, true)
                    .map_err(|_| bad("bad_encoding", format!("encoding `{e}` is not known")))
            })
            .transpose()
    }

    fn delimiter(&self) -> Result<Option<u8>, ApiError> {
        self.delimiter
            .as_deref()
            .map(|d| parse_delimiter(d).map_err(|e| bad("bad_delimiter", e.to_string())))
            .transpose()
    }

    /// Everything checked before a byte is imported: the target dataset and the options.
    pub(super) fn check(&self) -> Result<DatasetRef, ApiError> {
        self.strategy()?;
        self.format()?;
        self.encoding()?;
        self.delimiter()?;
        match (&self.dataset, &self.object) {
            (Some(d), _) => d
                .parse::<DatasetRef>()
                .map_err(|e| bad("bad_dataset", format!("dataset `{d}`: {e}"))),
            (None, Some(o)) => ObjectMap::builtin(o)
                .map_err(|e| bad("bad_object", e.to_string()))?
                .dataset()
                .ok_or_else(|| bad("bad_object", format!("{o} names no raw table"))),
            (None, None) => Err(bad(
                "no_dataset",
                "name the table to land in: a `dataset` field (raw.<source>_<object>) or an `object` field (salesforce.Opportunity)",
            )),
        }
    }

    /// `builder` configured with these options (checked before).
    pub(super) fn apply(&self, builder: ImportBuilder, dataset: &DatasetRef) -> ImportBuilder {
        builder
            .with_dataset(dataset.clone())
            .with_object(self.object.clone())
            .with_strategy(self.strategy().unwrap_or(ImportStrategy::Replace))
            .with_key(self.key.clone())
            .with_format(self.format().ok().flatten())
            .with_encoding(self.encoding().ok().flatten())
            .with_delimiter(self.delimiter().ok().flatten())
            .with_sheet(self.sheet.clone())
    }
}

fn flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(bad(
            "bad_multipart",
            format!("field `{name}`: `{value}` is not true or false"),
        )),
    }
}

/// The multipart form of `POST /api/import/files` (for the OpenAPI document).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file (its name's extension tells the format unless `format` is given).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The raw table to land in, `raw.<source>_<object>` (or give `object`).
    dataset: Option<String>,
    /// The vendor object the file is an export of (salesforce.Opportunity, hubspot.deals).
    object: Option<String>,
    /// replace (default), merge or append.
    strategy: Option<String>,
    /// Key columns of a merge, comma-separated landed names.
    key: Option<String>,
    /// csv, tsv, json, ndjson, xlsx, parquet (default: from the extension).
    format: Option<String>,
    encoding: Option<String>,
    delimiter: Option<String>,
    sheet: Option<String>,
    /// true: land the records that fit and quarantine the rest (default: refuse the upload).
    quarantine: Option<bool>,
    /// true: only preview; the upload is kept for `/api/import/files/{upload_id}/apply`.
    preview: Option<bool>,
}

/// An applied upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadApplied {
    pub upload_id: String,
    /// What the import did (as `revlake import --json` prints it).
    #[schema(value_type = Object)]
    pub import: Value,
    /// The target's checks, when it declares some: run id and whether a critical one failed.
    #[schema(value_type = Option<Object>)]
    pub checks: Option<Value>,
}

/// What `POST /api/import/files` answers: the import, or with preview=true the preview.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum UploadAnswer {
    Applied(UploadApplied),
    Preview(Box<Preview>),
}

/// `POST /api/import/files/{upload_id}/apply`: options overriding the upload's.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// replace, merge or append (default: the upload's).
    pub strategy: Option<String>,
    /// Key columns of a merge (default: the upload's).
    pub key: Option<Vec<String>>,
    /// Land the records that fit and quarantine the rest.
    pub quarantine: Option<bool>,
}

/// An upload stored in the lake.
struct Upload {
    id: String,
    workspace: WorkspaceId,
    /// The file's name as stored.
    name: String,
    options: ImportOptions,
}

impl Upload {
    fn folder(workspace: &WorkspaceId, id: &str) -> StorePath {
        StorePath::from(format!("{UPLOADS}/{}/{id}", workspace.as_str()))
    }

    fn file_path(&self) -> StorePath {
        Self::folder(&self.workspace, &self.id)
            .clone()
            .join(self.name.as_str())
    }

    /// The file's URL, which `import_file` reads through the lake's stores.
    fn url(&self, lake: &Lake) -> String {
        format!("{}{}", lake.url(), self.file_path())
    }

    /// `error` with the server's location of the file (its URL or local path) replaced by the
    /// uploaded file's name.
    fn scrub(&self, lake: &Lake, mut error: ApiError) -> ApiError {
        let url = self.url(lake);
        let mut places = vec![url.clone()];
        if let Some(path) = url::Url::parse(&url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
        {
            places.push(path.display().to_string());
        }
        for place in places {
            error.message = error.message.replace(&place, &self.name);
        }
        error
    }
}

fn store_of(lake: &Lake) -> Result<Arc<dyn ObjectStore>, ApiError> {
    lake.root_store()
        .map_err(|e| ApiError::internal("opening the lake's store", &e))
}

/// A file name safe as one path segment: letters, digits, `.`, `-` and `_`.
fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "upload".into()
    } else {
        cleaned.chars().take(128).collect()
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large();
    }
    bad(
        "bad_multipart",
        format!("the body is not a valid multipart form: {}", e.body_text()),
    )
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        "the upload is larger than the server accepts (see `revlake serve --max-upload`)",
    )
}

/// A small text field, read whole.
async fn small_text(mut field: Field<'_>, name: &str) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_FIELD {
            return Err(bad(
                "bad_multipart",
                format!("field `{name}` is longer than {MAX_FIELD} bytes"),
            ));
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| bad("bad_multipart", format!("field `{name}` is not UTF-8 text")))
}

/// Streams `field` to `path` in the store, at most `max` bytes; the bytes written.
async fn stream_to_store(
    store: &Arc<dyn ObjectStore>,
    path: &StorePath,
    mut field: Field<'_>,
    max: u64,
) -> Result<u64, ApiError> {
    let upload = store
        .put_multipart(path)
        .await
        .map_err(|e| ApiError::internal("storing the upload", &e))?;
    let mut writer = WriteMultipart::new(upload);
    let mut written = 0u64;
    let result: Result<(), ApiError> = async {
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            written += chunk.len() as u64;
            if written > max {
                return Err(too_large());
            }
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| ApiError::internal("storing the upload", &e))?;
            writer.put(chunk);
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            writer
                .finish()
                .await
                .map_err(|e| ApiError::internal("storing the upload", &e))?;
            Ok(written)
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(path = %path, error = %abort, "could not abort a failed upload");
            }
            Err(e)
        }
    }
}

/// Deletes everything stored for an upload.
async fn remove_upload(store: &Arc<dyn ObjectStore>, workspace: &WorkspaceId, id: &str) {
    let folder = Upload::folder(workspace, id);
    let mut listing = store.list(Some(&folder));
    while let Some(item) = listing.next().await {
        match item {
            Ok(meta) => {
                if let Err(e) = store.delete(&meta.location).await {
                    tracing::warn!(path = %meta.location, error = %e, "could not delete an upload file");
                }
            }
            Err(e) => {
                tracing::warn!(upload = id, error = %e, "could not list an upload");
                return;
            }
        }
    }
}

/// Upload a file to import (multipart), or preview it.
#[utoipa::path(
    post,
    path = "/api/import/files",
    tag = "imports",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Imported, or with preview=true previewed", body = UploadAnswer),
        (status = 400, description = "Malformed multipart, no file, no target, a bad option, an unreadable file", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 413, description = "Larger than --max-upload", body = ErrorBody),
        (status = 422, description = "Records that do not fit the target's columns (nothing written)", body = ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let mut multipart = multipart.map_err(|e| {
        bad(
            "bad_multipart",
            format!("send the file as multipart/form-data: {}", e.body_text()),
        )
    })?;
    let workspace = principal.workspace;
    let store = store_of(&state.lake)?;
    let id = format!("up_{}", uuid::Uuid::new_v4().simple());
    let mut options = ImportOptions::default();
    let mut preview = false;
    let mut stored: Option<(String, u64)> = None;
    let read: Result<(), ApiError> = async {
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_string();
            match name.as_str() {
                "file" => {
                    if stored.is_some() {
                        return Err(bad("bad_multipart", "send one `file` field per upload"));
                    }
                    let file_name = safe_name(field.file_name().unwrap_or("upload"));
                    let path = Upload::folder(&workspace, &id).join(file_name.as_str());
                    let bytes =
                        stream_to_store(&store, &path, field, state.config.max_upload_bytes)
                            .await?;
                    stored = Some((file_name, bytes));
                }
                "preview" => preview = flag("preview", &small_text(field, "preview").await?)?,
                other => {
                    let other = other.to_string();
                    let text = small_text(field, &other).await?;
                    options.set(&other, text)?;
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = read {
        remove_upload(&store, &workspace, &id).await;
        return Err(e);
    }
    let Some((name, bytes)) = stored else {
        return Err(bad(
            "no_file",
            "the form has no `file` field: send the file as a multipart field named file",
        ));
    };
    tracing::info!(upload = %id, file = %name, bytes, preview, "upload stored");
    let upload = Upload {
        id: id.clone(),
        workspace,
        name,
        options,
    };
    let dataset = match upload.options.check() {
        Ok(d) => d,
        Err(e) => {
            remove_upload(&store, &upload.workspace, &id).await;
            return Err(e);
        }
    };
    if preview {
        let meta = serde_json::json!({"name": upload.name, "options": upload.options});
        store
            .put(
                &Upload::folder(&upload.workspace, &id).join(META),
                serde_json::to_vec(&meta).unwrap_or_default().into(),
            )
            .await
            .map_err(|e| ApiError::internal("storing the upload", &e))?;
        let result = run_preview(&state, &upload, &dataset).await;
        if result.is_err() {
            remove_upload(&store, &upload.workspace, &id).await;
        }
        let preview = result.map_err(|e| upload.scrub(&state.lake, e))?;
        return Ok(ApiJson(UploadAnswer::Preview(Box::new(preview))).into_response());
    }
    let result = apply(&state, &upload, &dataset).await;
    remove_upload(&store, &upload.workspace, &id).await;
    let applied = result.map_err(|e| upload.scrub(&state.lake, e))?;
    Ok(ApiJson(UploadAnswer::Applied(applied)).into_response())
}

fn declared(state: &AppState, dataset: &DatasetRef) -> Result<Option<DatasetSchema>, ApiError> {
    let Some(root) = &state.config.project_root else {
        return Ok(None);
    };
    let project =
        super::pipeline::load(root).map_err(|e| ApiError::internal("loading the project", &e))?;
    Ok(project.schema(dataset).cloned())
}

async fn run_preview(
    state: &AppState,
    upload: &Upload,
    dataset: &DatasetRef,
) -> Result<Preview, ApiError> {
    let schema = declared(state, dataset)?;
    let url = upload.url(&state.lake);
    let dry = dry_run(
        &state.lake,
        &url,
        &upload.workspace,
        dataset,
        &upload.options,
        schema.as_ref(),
    )
    .await?;
    preview::preview(
        &state.lake,
        &upload.id,
        &upload.workspace,
        dataset,
        &upload.options,
        schema.as_ref(),
        &dry,
    )
    .await
}

/// Imports the upload as `revlake import` would, after a dry run found every record fitting
/// (unless quarantine is allowed).
async fn apply(
    state: &AppState,
    upload: &Upload,
    dataset: &DatasetRef,
) -> Result<UploadApplied, ApiError> {
    let schema = declared(state, dataset)?;
    let url = upload.url(&state.lake);
    if !upload.options.quarantine {
        let dry = dry_run(
            &state.lake,
            &url,
            &upload.workspace,
            dataset,
            &upload.options,
            schema.as_ref(),
        )
        .await?;
        if !dry.bad.is_empty() {
            return Err(refuse_bad_records(&upload.name, &dry.bad));
        }
    }
    let outcome = upload
        .options
        .apply(
            crate::sources::file::import_file(&state.lake, url, upload.workspace.clone()),
            dataset,
        )
        .with_schema(schema.as_ref())
        .await
        .map_err(|e| file_error("importing the upload", e))?;
    tracing::info!(upload = %upload.id, dataset = %dataset, rows = outcome.rows, version = outcome.version, "upload imported");
    let mut checks = None;
    if let Some(root) = &state.config.project_root {
        let project = super::pipeline::load(root)
            .map_err(|e| ApiError::internal("loading the project", &e))?;
        match crate::quality::check_written(
            &state.lake,
            &project,
            std::slice::from_ref(dataset),
            Some(&upload.workspace),
        )
        .await
        {
            Ok(Some(run)) => {
                checks = Some(serde_json::json!({
                    "run_id": run.run_id,
                    "critical_failed": run.failed_at(crate::quality::Severity::Critical),
                }))
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "checks after the upload failed"),
        }
    }
    let mut import =
        serde_json::to_value(&outcome).map_err(|e| ApiError::internal("answering", &e))?;
    // The file as the client named it, not where the server keeps it.
    import["file"] = Value::String(upload.name.clone());
    Ok(UploadApplied {
        upload_id: upload.id.clone(),
        import,
        checks,
    })
}

/// Apply a previewed upload.
#[utoipa::path(
    post,
    path = "/api/import/files/{upload_id}/apply",
    tag = "imports",
    params(("upload_id" = String, Path, description = "The id a preview answered (up_...)")),
    request_body = ApplyRequest,
    responses(
        (status = 200, description = "Imported", body = UploadApplied),
        (status = 400, description = "A bad option or an unreadable file", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "No such upload in this workspace (or already applied)", body = ErrorBody),
        (status = 422, description = "Records that do not fit the target's columns (nothing written)", body = ErrorBody),
    )
)]
pub async fn apply_upload(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(upload_id): Path<String>,
    ApiJson(request): ApiJson<ApplyRequest>,
) -> Result<ApiJson<UploadApplied>, ApiError> {
    let workspace = principal.workspace;
    let not_found = || ApiError::not_found("upload", &upload_id);
    if !upload_id.starts_with("up_") || !upload_id[3..].chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let store = store_of(&state.lake)?;
    let meta_path = Upload::folder(&workspace, &upload_id).join(META);
    let meta = match store.get(&meta_path).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|e| ApiError::internal("reading the upload", &e))?,
        Err(object_store::Error::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(ApiError::internal("reading the upload", &e)),
    };
    #[derive(Deserialize)]
    struct Meta {
        name: String,
        options: ImportOptions,
    }
    let meta: Meta =
        serde_json::from_slice(&meta).map_err(|e| ApiError::internal("reading the upload", &e))?;
    let mut options = meta.options;
    if let Some(s) = request.strategy {
        options.strategy = Some(s);
    }
    if let Some(k) = request.key {
        options.key = k;
    }
    if let Some(q) = request.quarantine {
        options.quarantine = q;
    }
    let dataset = options.check()?;
    let upload = Upload {
        id: upload_id.clone(),
        workspace,
        name: meta.name,
        options,
    };
    let applied = apply(&state, &upload, &dataset)
        .await
        .map_err(|e| upload.scrub(&state.lake, e))?;
    remove_upload(&store, &upload.workspace, &upload_id).await;
    Ok(ApiJson(applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_one_safe_segment() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\x\\Deals report.csv"), "Deals_report.csv");
        assert_eq!(safe_name(".."), "upload");
        assert_eq!(safe_name("deals.ndjson.gz"), "deals.ndjson.gz");
    }

    #[test]
    fn options_are_checked_before_anything_is_imported() {
        let mut o = ImportOptions::default();
        assert_eq!(o.check().unwrap_err().code, "no_dataset");
        o.set("dataset", "raw.crm_deals".into()).unwrap();
        assert_eq!(o.check().unwrap().to_string(), "raw.crm_deals");
        o.set("strategy", "upsert".into()).unwrap();
        assert_eq!(o.check().unwrap_err().code, "bad_strategy");
        o.set("strategy", "merge".into()).unwrap();
        o.set("key", "id, email".into()).unwrap();
        assert_eq!(o.key, ["id", "email"]);
        assert!(o.set("colour", "red".into()).is_err());
        o.set("dataset", "staging.deals".into()).unwrap();
        // Not raw: the import itself refuses it, naming the rule.
        assert!(o.check().is_ok());
    }
}
