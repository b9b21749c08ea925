//! Snowflake's driver ("connector") protocol, the one its JDBC / Python / Go drivers speak:
//! a session opened by `POST /session/v1/login-request`, statements by
//! `POST /queries/v1/query-request` with `Authorization: Snowflake Token="…"`, results as JSON
//! (`rowset`) or Arrow IPC (`rowsetBase64`), a running statement polled at its `getResultUrl`.
//!
//! `PUT` is a statement whose answer is an upload command: the server names the stage
//! location and, on Google Cloud, a presigned URL the file is sent to with an HTTP `PUT`.
//! revlake uploads to a presigned URL or a local-filesystem stage (what emulators answer);
//! stages that need the drivers' client-side encryption or cloud SDK credentials (S3 or Azure
//! internal stages, `encryptionMaterial` in the answer) are refused with a message: load those
//! through an external stage (`stage_url`).
//!
//! Results are read from the first partition only (the statements revlake reads, `DESCRIBE
//! TABLE` and counts, are small); the session token is not renewed, so one export must finish
//! within the token's validity (an hour on Snowflake).
//!
//! No driver crate is used: `snowflake-connector-rs` runs no `PUT` and its key-pair auth pulls
//! the RustCrypto RSA stack beside the aws-lc-rs that signs our JWTs; see [`super`].

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, StructArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};

use super::config::SnowflakeConfig;
use super::error::{ExportError, Result};
use super::http::send;
use super::keys::base64_decode;
use super::snowflake::ResultSet;

const WAREHOUSE: &str = "snowflake";
/// Codes of a statement still running (synchronous and asynchronous spelling).
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];

/// How the login proves who the user is.
#[derive(Clone)]
pub enum Credential {
    Password(String),
    /// A key-pair JWT (`AUTHENTICATOR = SNOWFLAKE_JWT`).
    Jwt(String),
    Oauth(String),
    /// A programmatic access token.
    Pat(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Credential::Password(_) => "Password",
            Credential::Jwt(_) => "Jwt",
            Credential::Oauth(_) => "Oauth",
            Credential::Pat(_) => "Pat",
        };
        write!(f, "{kind}(***)")
    }
}

impl Credential {
    /// The credential's fields of the login body's `data`.
    fn login_fields(&self) -> Value {
        match self {
            Credential::Password(p) => json!({ "PASSWORD": p }),
            Credential::Jwt(t) => json!({ "AUTHENTICATOR": "SNOWFLAKE_JWT", "TOKEN": t }),
            Credential::Oauth(t) => json!({ "AUTHENTICATOR": "OAUTH", "TOKEN": t }),
            Credential::Pat(t) => {
                json!({ "AUTHENTICATOR": "PROGRAMMATIC_ACCESS_TOKEN", "TOKEN": t })
            }
        }
    }
}

/// A logged-in session.
pub struct ConnectorSession {
    http: reqwest::Client,
    base: String,
    token: String,
    target: String,
    poll_ms: u64,
    max_attempts: usize,
    sequence: AtomicU64,
}

impl std::fmt::Debug for ConnectorSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorSession")
            .field("base", &self.base)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl ConnectorSession {
    /// Opens a session at `base` (`protocol://host[:port]`) in the configured database, schema,
    /// warehouse and role.
    pub async fn login(
        target: &str,
        config: &SnowflakeConfig,
        base: &str,
        credential: &Credential,
        http: reqwest::Client,
    ) -> Result<Self> {
        let url = format!("{base}/session/v1/login-request");
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut query = vec![
            ("request_id", request_id.as_str()),
            ("databaseName", config.database.as_str()),
            ("schemaName", config.schema.as_str()),
        ];
        if let Some(w) = &config.warehouse {
            query.push(("warehouse", w.as_str()));
        }
        if let Some(r) = &config.role {
            query.push(("roleName", r.as_str()));
        }
        let mut data = json!({
            "ACCOUNT_NAME": super::snowflake::jwt_account(&config.account),
            "LOGIN_NAME": config.user,
            "CLIENT_APP_ID": "revlake",
            "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
            "SESSION_PARAMETERS": { "AUTOCOMMIT": true },
        });
        if let (Some(d), Value::Object(fields)) = (data.as_object_mut(), credential.login_fields())
        {
            d.extend(fields);
        }
        let body = json!({ "data": data });
        tracing::info!(target_name = %target, url, user = %config.user, "snowflake login");
        let reply = send(WAREHOUSE, &url, config.max_attempts, || {
            http.post(&url)
                .query(&query)
                .header(reqwest::header::ACCEPT, "application/snowflake")
                .header(reqwest::header::USER_AGENT, user_agent())
                .json(&body)
        })
        .await?;
        let token = reply.body["data"]["token"].as_str().unwrap_or_default();
        if reply.status != 200 || reply.body["success"] != json!(true) || token.is_empty() {
            return Err(ExportError::Login {
                target: target.to_string(),
                warehouse: WAREHOUSE,
                url,
                code: reply.body["code"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {}", reply.status), str::to_string),
                message: reply.body["message"]
                    .as_str()
                    .map_or_else(|| reply.body.to_string(), str::to_string),
            });
        }
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            target: target.to_string(),
            poll_ms: config.poll_ms,
            max_attempts: config.max_attempts,
            sequence: AtomicU64::new(1),
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Snowflake Token=\"{}\"", self.token),
            )
            .header(reqwest::header::ACCEPT, "application/snowflake")
            .header(reqwest::header::USER_AGENT, user_agent())
    }

    /// Runs one statement to completion (polling while it runs); returns the answer's `data`.
    pub async fn query(&self, dataset: &str, statement: &str) -> Result<Value> {
        let url = format!("{}/queries/v1/query-request", self.base);
        let request_id = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "sqlText": statement,
            "asyncExec": false,
            "sequenceId": self.sequence.fetch_add(1, Ordering::Relaxed),
            "querySubmissionTime": chrono::Utc::now().timestamp_millis(),
        });
        tracing::info!(target_name = %self.target, dataset, statement, "snowflake statement");
        let mut reply = send(WAREHOUSE, &url, self.max_attempts, || {
            self.request(reqwest::Method::POST, &url)
                .query(&[("requestId", request_id.as_str())])
                .json(&body)
        })
        .await?;
        loop {
            let code = reply.body["code"].as_str().unwrap_or_default();
            if reply.status != 200 || reply.body["success"] != json!(true) {
                return Err(refused(dataset, statement, &reply.body, reply.status));
            }
            if !IN_PROGRESS.contains(&code) {
                return Ok(reply.body["data"].clone());
            }
            let next = reply.body["data"]["getResultUrl"]
                .as_str()
                .unwrap_or_default();
            if !next.starts_with('/') {
                return Err(refused(dataset, statement, &reply.body, reply.status));
            }
            let poll_url = format!("{}{next}", self.base);
            tokio::time::sleep(Duration::from_millis(self.poll_ms)).await;
            reply = send(WAREHOUSE, &poll_url, self.max_attempts, || {
                self.request(reqwest::Method::GET, &poll_url)
            })
            .await?;
        }
    }

    /// Runs one statement; returns its rows as text.
    pub async fn execute(&self, dataset: &str, statement: &str) -> Result<ResultSet> {
        let data = self.query(dataset, statement).await?;
        let rows = result_rows(&data).map_err(|reason| ExportError::Warehouse {
            dataset: dataset.to_string(),
            warehouse: WAREHOUSE,
            what: format!(
                "statement (query id {}): unreadable result",
                data["queryId"].as_str().unwrap_or("?")
            ),
            message: reason,
            statement: statement.to_string(),
        })?;
        Ok(ResultSet {
            handle: data["queryId"].as_str().unwrap_or_default().to_string(),
            rows,
        })
    }

    /// Runs a `PUT` of the local `file` and uploads it where the server says.
    pub async fn put(&self, dataset: &str, statement: &str, file: &Path) -> Result<()> {
        let data = self.query(dataset, statement).await?;
        let fail = |location: &str, reason: String| ExportError::Stage {
            dataset: dataset.to_string(),
            location: location.to_string(),
            reason,
        };
        if data["command"].as_str() != Some("UPLOAD") {
            return Err(fail(
                &file.display().to_string(),
                format!(
                    "the PUT was not answered with an upload command: {data}\n  statement: {statement}"
                ),
            ));
        }
        let info = &data["stageInfo"];
        let location = info["location"].as_str().unwrap_or_default();
        let encrypted = match &data["encryptionMaterial"] {
            Value::Null => false,
            Value::Array(a) => a.iter().any(|m| !m.is_null()),
            _ => true,
        };
        if encrypted {
            return Err(fail(
                location,
                "the stage wants client-side encryption, which revlake does not implement: create the internal stage with ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE'), or load through an external stage (stage_url)".into(),
            ));
        }
        let bytes = std::fs::read(file).map_err(|e| {
            fail(
                &file.display().to_string(),
                format!("reading the file: {e}"),
            )
        })?;
        let presigned = info["presignedUrl"].as_str().unwrap_or_default();
        match info["locationType"].as_str().unwrap_or_default() {
            "GCS" if !presigned.is_empty() => {
                let reply = send(WAREHOUSE, presigned, self.max_attempts, || {
                    self.http
                        .put(presigned)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes.clone())
                })
                .await?;
                if !(200..300).contains(&reply.status) {
                    return Err(fail(
                        location,
                        format!(
                            "upload of {} to the presigned URL answered HTTP {}: {}",
                            file.display(),
                            reply.status,
                            reply.body
                        ),
                    ));
                }
            }
            "LOCAL_FS" => {
                let name = file.file_name().ok_or_else(|| {
                    fail(location, format!("{} has no file name", file.display()))
                })?;
                let dir = Path::new(location);
                std::fs::create_dir_all(dir)
                    .and_then(|_| std::fs::write(dir.join(name), &bytes))
                    .map_err(|e| fail(location, format!("copying {}: {e}", file.display())))?;
            }
            other => {
                return Err(fail(
                    location,
                    format!(
                        "the stage is on {} and needs the drivers' cloud upload, which revlake does not implement (it uploads to presigned URLs only): load through an external stage (stage_url) instead",
                        if other.is_empty() {
                            "an unnamed location type"
                        } else {
                            other
                        }
                    ),
                ));
            }
        }
        tracing::debug!(dataset, file = %file.display(), bytes = bytes.len(), "uploaded to the stage");
        Ok(())
    }
}

fn user_agent() -> &'static str {
    concat!("revlake/", env!("CARGO_PKG_VERSION"))
}

fn refused(dataset: &str, statement: &str, body: &Value, status: u16) -> ExportError {
    let data = &body["data"];
    let code = body["code"]
        .as_str()
        .or_else(|| data["errorCode"].as_str())
        .unwrap_or("");
    let mut what = format!("statement (HTTP {status}");
    if !code.is_empty() {
        what.push_str(&format!(", code {code}"));
    }
    if let Some(state) = data["sqlState"].as_str() {
        what.push_str(&format!(", SQL state {state}"));
    }
    if let Some(id) = data["queryId"].as_str() {
        what.push_str(&format!(", query id {id}"));
    }
    what.push(')');
    ExportError::Warehouse {
        dataset: dataset.to_string(),
        warehouse: WAREHOUSE,
        what,
        message: body["message"]
            .as_str()
            .map_or_else(|| format!("unexpected answer: {body}"), str::to_string),
        statement: statement.to_string(),
    }
}

/// The rows of a query answer's `data`, as text: `rowset` (JSON) or `rowsetBase64` (Arrow).
pub fn result_rows(data: &Value) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    if let Some(rows) = data["rowset"].as_array() {
        return Ok(rows
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|cells| {
                        cells
                            .iter()
                            .map(|c| match c {
                                Value::Null => None,
                                Value::String(s) => Some(s.clone()),
                                other => Some(other.to_string()),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect());
    }
    match data["rowsetBase64"].as_str() {
        Some(b64) if !b64.is_empty() => arrow_rows(&base64_decode(b64)?),
        _ => Ok(Vec::new()),
    }
}

/// Rows of an Arrow IPC stream as Snowflake writes it: `NUMBER(p,s)` as integers with the
/// scale in the field's metadata, timestamps as `{epoch, fraction[, timezone]}` structs.
fn arrow_rows(ipc: &[u8]) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let reader = arrow::ipc::reader::StreamReader::try_new(Cursor::new(ipc), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("reading an Arrow batch: {e}"))?;
        let schema = batch.schema();
        let columns: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| column_text(column, field))
            .collect::<std::result::Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            out.push(columns.iter().map(|c| c[row].clone()).collect());
        }
    }
    Ok(out)
}

fn column_text(
    column: &ArrayRef,
    field: &Field,
) -> std::result::Result<Vec<Option<String>>, String> {
    let scale: u32 = field
        .metadata()
        .get("scale")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let n = column.len();
    let valid = |i: usize| column.is_valid(i);
    match column.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 if scale > 0 => {
            let wide = arrow::compute::cast(column, &DataType::Int64).map_err(|e| e.to_string())?;
            let ints = wide.as_primitive::<Int64Type>();
            Ok((0..n)
                .map(|i| valid(i).then(|| scaled(ints.value(i) as i128, scale)))
                .collect())
        }
        DataType::Struct(fields) if fields.find("epoch").is_some() => {
            let s: &StructArray = column.as_struct();
            let epoch = s
                .column_by_name("epoch")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or("a timestamp struct without an Int64 epoch")?;
            let fraction = s
                .column_by_name("fraction")
                .and_then(|c| c.as_primitive_opt::<Int32Type>());
            let zoned = s.column_by_name("timezone").is_some();
            Ok((0..n)
                .map(|i| {
                    if !valid(i) {
                        return None;
                    }
                    let nanos = fraction.map_or(0, |f| f.value(i).max(0) as u32);
                    let t = chrono::DateTime::from_timestamp(epoch.value(i), nanos)?;
                    Some(if zoned {
                        t.to_rfc3339()
                    } else {
                        t.naive_utc().to_string()
                    })
                })
                .collect())
        }
        _ => {
            let options = FormatOptions::default();
            let f =
                ArrayFormatter::try_new(column.as_ref(), &options).map_err(|e| e.to_string())?;
            Ok((0..n)
                .map(|i| valid(i).then(|| f.value(i).to_string()))
                .collect())
        }
    }
}

/// `12345` with scale 2 → `123.45`.
fn scaled(v: i128, scale: u32) -> String {
    let p = 10i128.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let p = p as u128;
    format!("{sign}{}.{:0width$}", a / p, a % p, width = scale as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::Schema;
    use std::collections::HashMap;
    use std::sync::Arc;
    use wiremock::matchers::{body_string_contains, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn config() -> SnowflakeConfig {
        toml::from_str(
            r#"api = "connector"
account = "acme-prod.eu-west-1"
user = "loader"
database = "ANALYTICS"
schema = "REVLAKE"
warehouse = "LOAD_WH"
stage = "REVLAKE_STAGE"
auth = { type = "password", password_env = "P" }
poll_ms = 5
max_attempts = 2
"#,
        )
        .unwrap()
    }

    fn ipc(batch: &RecordBatch) -> String {
        let mut buf = Vec::new();
        {
            let mut w =
                arrow::ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema()).unwrap();
            w.write(batch).unwrap();
            w.finish().unwrap();
        }
        crate::export::keys::base64_std(&buf)
    }

    async fn logged_in(server: &MockServer) -> ConnectorSession {
        Mock::given(method("POST"))
            .and(path("/session/v1/login-request"))
            .and(query_param("databaseName", "ANALYTICS"))
            .and(query_param("warehouse", "LOAD_WH"))
            .and(body_string_contains("\"PASSWORD\":\"s3cret\""))
            .and(body_string_contains("\"ACCOUNT_NAME\":\"ACME-PROD\""))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"data": {"token": "tok-1", "masterToken": "m"}, "success": true}),
            ))
            .mount(server)
            .await;
        ConnectorSession::login(
            "sf",
            &config(),
            &server.uri(),
            &Credential::Password("s3cret".into()),
            reqwest::Client::new(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn login_then_query_with_the_session_token_reading_arrow_rows() {
        let server = MockServer::start().await;
        let session = logged_in(&server).await;
        let mut meta = HashMap::new();
        meta.insert("scale".to_string(), "2".to_string());
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true).with_metadata(meta),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("ID"), None])),
                Arc::new(Int64Array::from(vec![Some(-12345), None])),
            ],
        )
        .unwrap();
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .and(header("authorization", "Snowflake Token=\"tok-1\""))
            .and(body_string_contains("DESCRIBE TABLE"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"queryId": "q1", "queryResultFormat": "arrow", "rowsetBase64": ipc(&batch)},
                "success": true
            })))
            .mount(&server)
            .await;
        let got = session
            .execute("staging.deals", "DESCRIBE TABLE T")
            .await
            .unwrap();
        assert_eq!(got.handle, "q1");
        assert_eq!(
            got.rows,
            vec![
                vec![Some("ID".to_string()), Some("-123.45".to_string())],
                vec![None, None]
            ]
        );
    }

    #[tokio::test]
    async fn a_running_statement_is_polled_at_its_result_url() {
        let server = MockServer::start().await;
        let session = logged_in(&server).await;
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "code": "333334", "success": true,
                "data": {"queryId": "q2", "getResultUrl": "/queries/q2/result"}
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/queries/q2/result"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "code": "333333", "success": true,
                "data": {"queryId": "q2", "getResultUrl": "/queries/q2/result"}
            })))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/queries/q2/result"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "success": true,
                "data": {"queryId": "q2", "queryResultFormat": "json", "rowset": [["3", null]]}
            })))
            .with_priority(2)
            .mount(&server)
            .await;
        let got = session
            .execute("staging.deals", "COPY INTO T")
            .await
            .unwrap();
        assert_eq!(got.rows, vec![vec![Some("3".to_string()), None]]);
        let polls = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() == "GET")
            .count();
        assert_eq!(polls, 2);
    }

    #[tokio::test]
    async fn a_refused_statement_names_code_state_query_and_statement() {
        let server = MockServer::start().await;
        let session = logged_in(&server).await;
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "code": "002003", "success": false,
                "message": "SQL compilation error: Table 'X' does not exist or not authorized.",
                "data": {"errorCode": "002003", "sqlState": "42S02", "queryId": "q3"}
            })))
            .mount(&server)
            .await;
        let e = session
            .execute("staging.deals", "MERGE INTO X")
            .await
            .unwrap_err()
            .to_string();
        for part in [
            "staging.deals",
            "002003",
            "42S02",
            "q3",
            "does not exist",
            "MERGE INTO X",
        ] {
            assert!(e.contains(part), "{part} missing from {e}");
        }
    }

    #[tokio::test]
    async fn a_refused_login_names_the_code_and_message() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/session/v1/login-request"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": null, "code": "390100", "success": false,
                "message": "Incorrect username or password was specified."
            })))
            .mount(&server)
            .await;
        let e = ConnectorSession::login(
            "sf",
            &config(),
            &server.uri(),
            &Credential::Password("wrong".into()),
            reqwest::Client::new(),
        )
        .await
        .unwrap_err();
        assert!(e.is_user_error());
        let e = e.to_string();
        assert!(
            e.contains("390100") && e.contains("Incorrect username") && e.contains("export sf"),
            "{e}"
        );
        assert!(!e.contains("wrong"), "the password leaked: {e}");
    }

    #[tokio::test]
    async fn put_uploads_to_the_presigned_url_and_refuses_encrypted_stages() {
        let server = MockServer::start().await;
        let session = logged_in(&server).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("part-00000.parquet");
        std::fs::write(&file, b"PAR1 bytes").unwrap();
        let upload = format!("{}/bucket/part-00000.parquet", server.uri());
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .and(body_string_contains("@S/ok/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
                "command": "UPLOAD", "src_locations": [file.display().to_string()],
                "stageInfo": {"locationType": "GCS", "location": "S/ok/", "creds": {}, "presignedUrl": upload}
            }})))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/bucket/part-00000.parquet"))
            .and(wiremock::matchers::body_bytes(b"PAR1 bytes".to_vec()))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        session
            .put("staging.deals", "PUT 'file:///x' @S/ok/", &file)
            .await
            .unwrap();
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .and(body_string_contains("@S/enc/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
                "command": "UPLOAD", "encryptionMaterial": {"queryStageMasterKey": "k"},
                "stageInfo": {"locationType": "S3", "location": "bucket/enc/", "creds": {"AWS_KEY_ID": "x"}}
            }})))
            .mount(&server)
            .await;
        let e = session
            .put("staging.deals", "PUT 'file:///x' @S/enc/", &file)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("client-side encryption") && e.contains("stage_url"),
            "{e}"
        );
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .and(body_string_contains("@S/s3/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {
                "command": "UPLOAD",
                "stageInfo": {"locationType": "S3", "location": "bucket/s3/", "creds": {"AWS_KEY_ID": "x"}}
            }})))
            .mount(&server)
            .await;
        let e = session
            .put("staging.deals", "PUT 'file:///x' @S/s3/", &file)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("S3") && e.contains("presigned URLs only"), "{e}");
    }

    #[test]
    fn scaled_numbers_and_json_rowsets_read_as_text() {
        assert_eq!(scaled(5, 2), "0.05");
        assert_eq!(scaled(-100, 1), "-10.0");
        let data = json!({"rowset": [["1", null, 2.5]]});
        assert_eq!(
            result_rows(&data).unwrap(),
            vec![vec![Some("1".into()), None, Some("2.5".into())]]
        );
        assert!(result_rows(&json!({"rowsetBase64": "!!"})).is_err());
        assert!(
            result_rows(&json!({"rowsetBase64": ""}))
                .unwrap()
                .is_empty()
        );
    }
}
