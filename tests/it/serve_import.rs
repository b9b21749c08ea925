//! The import API of `revlake serve` on loopback: connecting a mock Pipedrive (on 127.0.0.1),
//! background syncs tracked as jobs, their status from ops.sync_log, file uploads with
//! preview, apply and the three strategies, and the budgets of requests without a valid key.
//! Each test has its own project folder (pipelines/), lake and keys for two workspaces.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use revlake::lake::{DatasetRef, Lake, WorkspaceId};
use revlake::serve::{AppState, ServeConfig, create_key, serve};
use revlake::sql::{SessionOptions, SqlSession};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::rows;
use crate::pipedrive::{deal, mount_fields, mount_no_deleted, v2_page};

/// A project, a lake, keys of `acme` and `globex`, and a server over them.
struct Env {
    _dir: tempfile::TempDir,
    project: PathBuf,
    lake: Lake,
    acme: String,
    globex: String,
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn config() -> ServeConfig {
    ServeConfig {
        requests_per_minute: 100_000,
        burst: 10_000,
        allow_connection_base_url: true,
        ..ServeConfig::default()
    }
}

async fn env(config: ServeConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("pipelines")).unwrap();
    std::fs::write(
        project.join("pipelines/default.toml"),
        "# the test pipeline\nworkspace = \"acme\"\n",
    )
    .unwrap();
    let lake = Lake::open(&dir.path().join("lake").display().to_string())
        .await
        .unwrap();
    let acme = create_key(&lake, &WorkspaceId::new("acme").unwrap(), None)
        .await
        .unwrap()
        .secret;
    let globex = create_key(&lake, &WorkspaceId::new("globex").unwrap(), None)
        .await
        .unwrap()
        .secret;
    let state = AppState::new(
        lake.clone(),
        ServeConfig {
            project_root: Some(project.clone()),
            ..config
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async move {
        let _ = rx.await;
    }));
    Env {
        _dir: dir,
        project,
        lake,
        acme,
        globex,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        stop: Some(tx),
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

impl Env {
    async fn get(&self, key: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        answer(r.send().await.unwrap()).await
    }

    async fn post(&self, key: Option<&str>, path: &str, body: Value) -> (StatusCode, Value) {
        let mut r = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        answer(r.send().await.unwrap()).await
    }

    async fn upload_raw(
        &self,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}/api/import/files", self.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body);
        answer(r.send().await.unwrap()).await
    }

    /// Uploads `file` as `name` with the text `fields`.
    async fn upload(
        &self,
        key: &str,
        name: &str,
        file: &[u8],
        fields: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let (content_type, body) = form(name, file, fields);
        self.upload_raw(key, &content_type, body).await
    }

    async fn wait_job(&self, key: &str, id: &str) -> Value {
        for _ in 0..300 {
            let (status, job) = self.get(Some(key), &format!("/api/jobs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }

    async fn table(&self, workspace: &str, sql: &str) -> Vec<String> {
        let session = SqlSession::open(
            &self.lake,
            &SessionOptions {
                workspace: Some(WorkspaceId::new(workspace).unwrap()),
                ..SessionOptions::default()
            },
        )
        .await
        .unwrap();
        rows(&session, sql).await
    }

    async fn version(&self, dataset: &str) -> Option<i64> {
        let d: DatasetRef = dataset.parse().unwrap();
        self.lake
            .try_load(&d)
            .await
            .unwrap()
            .and_then(|t| t.version())
            .map(|v| v as i64)
    }

    fn pipeline(&self) -> String {
        std::fs::read_to_string(self.project.join("pipelines/default.toml")).unwrap()
    }
}

/// A multipart body: the text fields, then the file.
fn form(name: &str, file: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "revlake-test-boundary-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// An environment variable name of letters only (no digit runs that look like a secret),
/// holding a fresh token.
fn token_var() -> (String, String) {
    let letters: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .map(|c| match c.to_digit(16) {
            Some(d) if d < 10 => (b'G' + d as u8) as char,
            _ => c.to_ascii_uppercase(),
        })
        .collect();
    let var = format!("PD_TOKEN_{letters}");
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    // SAFETY: each test sets its own uniquely named variable; no test reads another's.
    unsafe { std::env::set_var(&var, &token) };
    (var, token)
}

/// A Pipedrive mock whose deals stream has two deals.
async fn pipedrive() -> MockServer {
    let server = MockServer::start().await;
    mount_fields(&server).await;
    mount_no_deleted(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/deals"))
        .and(query_param_is_missing("status"))
        .respond_with(v2_page(
            vec![
                deal(1, "Acme", 1000.5, "2025-01-02T10:00:00Z"),
                deal(2, "Globex", 2000.0, "2025-01-03T10:00:00Z"),
            ],
            None,
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_syncs_in_the_background_and_reports_its_status() {
    let env = env(config()).await;
    let mock = pipedrive().await;
    let (var, token) = token_var();
    let (status, body) = env
        .post(
            Some(&env.acme),
            "/api/import/connect",
            json!({"source": "pipedrive", "name": "pd", "credentials": {"api_token": var},
                   "streams": ["deals"], "base_url": mock.uri()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["connection_id"], "pd");
    assert_eq!(body["status"], "connected");
    assert_eq!(body["sync_started"], true);
    // Saved in the workspace's pipeline file by reference, the file's comment kept.
    let file = env.pipeline();
    assert!(file.starts_with("# the test pipeline\n"), "{file}");
    assert!(
        file.contains("[connections.pd]") && file.contains(&var),
        "{file}"
    );
    assert!(!file.contains(&token), "the secret never reaches the file");

    let job = env
        .wait_job(&env.acme, body["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "sync");
    assert_eq!(job["result"]["records"], 2, "{job}");
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    assert_eq!(
        env.table(
            "acme",
            "SELECT id, title FROM raw.pipedrive_deals ORDER BY id"
        )
        .await,
        ["1,Acme", "2,Globex"]
    );

    let (status, first) = env.get(Some(&env.acme), "/api/import/status/pd").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["records_synced"], 2, "{first}");
    assert_eq!(first["source"], "pipedrive");
    assert!(first["last_sync"].is_string(), "{first}");
    assert_eq!(first["errors"], json!([]));
    assert_eq!(first["streams"][0]["stream"], "deals");
    assert_eq!(first["streams"][0]["cursor"], "2025-01-03T10:00:00Z");

    // Another sync, through the job table and ops.sync_log like `revlake sync pd`.
    let (status, started) = env
        .post(
            Some(&env.acme),
            "/api/import/sync/pd",
            json!({"full": false}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["job_id"].as_str().unwrap();
    assert_eq!(env.wait_job(&env.acme, id).await["status"], "succeeded");
    let (_, second) = env.get(Some(&env.acme), "/api/import/status/pd").await;
    assert_eq!(second["records_synced"], 4, "{second}");
    assert!(second["last_sync"].as_str() >= first["last_sync"].as_str());
    assert_eq!(
        env.table(
            "acme",
            "SELECT count(*) FROM ops.sync_log WHERE connection = 'pd'"
        )
        .await,
        ["2"]
    );

    // Another workspace sees neither the job nor the connection, answered as missing ones are.
    for (path, missing) in [
        (format!("/api/jobs/{id}"), format!("job `{id}` not found")),
        (
            "/api/import/status/pd".to_string(),
            "connection `pd` not found".to_string(),
        ),
    ] {
        let (status, body) = env.get(Some(&env.globex), &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(message(&body), missing);
    }
    let (status, body) = env
        .post(Some(&env.globex), "/api/import/sync/pd", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = env.get(Some(&env.acme), "/api/jobs/job_nothere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Unknown stream: refused before any job starts.
    let (status, body) = env
        .post(
            Some(&env.acme),
            "/api/import/sync/pd",
            json!({"streams": ["invoices"]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "unknown_stream")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sync_fails_its_job_and_shows_in_the_status() {
    let env = env(config()).await;
    let mock = MockServer::start().await;
    mount_fields(&mock).await;
    mount_no_deleted(&mock).await;
    Mock::given(method("GET"))
        .and(path("/api/v2/deals"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad token"))
        .mount(&mock)
        .await;
    let (var, _) = token_var();
    let (status, body) = env
        .post(
            Some(&env.acme),
            "/api/import/connect",
            json!({"source": "pipedrive", "credentials": {"api_token": var},
                   "streams": ["deals"], "base_url": mock.uri()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["connection_id"], "pipedrive",
        "the vendor's name by default"
    );
    let job = env
        .wait_job(&env.acme, body["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("deals"), "{job}");
    let (_, status_body) = env
        .get(Some(&env.acme), "/api/import/status/pipedrive")
        .await;
    assert_eq!(status_body["errors"][0]["stream"], "deals", "{status_body}");
    assert_eq!(status_body["records_synced"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_bad_requests_and_leaves_the_pipeline_as_it_was() {
    let env = env(config()).await;
    let before = env.pipeline();
    let (var, _) = token_var();
    let secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let cases = [
        (
            json!({"source": "nosuchcrm", "credentials": {"api_token": var}}),
            StatusCode::BAD_REQUEST,
            "unknown_source",
            "nosuchcrm",
        ),
        (
            json!({"source": "pipedrive", "credentials": {"api_token": secret}}),
            StatusCode::BAD_REQUEST,
            "secret_inline",
            "credentials.api_token",
        ),
        (
            json!({"source": "pipedrive", "credentials": {"api_token": "REVLAKE_NOT_SET_ANYWHERE"}}),
            StatusCode::BAD_REQUEST,
            "bad_connection",
            "REVLAKE_NOT_SET_ANYWHERE",
        ),
        (
            json!({"source": "pipedrive", "credentials": {}}),
            StatusCode::BAD_REQUEST,
            "bad_connection",
            "api_token",
        ),
        (
            json!({"source": "pipedrive", "credentials": {"api_token": var}, "streams": ["invoices"]}),
            StatusCode::BAD_REQUEST,
            "bad_connection",
            "invoices",
        ),
        (
            json!({"source": "singer", "credentials": {}}),
            StatusCode::BAD_REQUEST,
            "source_not_allowed",
            "local program",
        ),
        (
            json!({"source": "pipedrive", "name": "../etc", "credentials": {"api_token": var}}),
            StatusCode::BAD_REQUEST,
            "bad_name",
            "letters",
        ),
        (
            json!({"source": "pipedrive", "credentials": {"api_token": var}, "password": "x"}),
            StatusCode::BAD_REQUEST,
            "bad_json",
            "password",
        ),
    ];
    for (body, want_status, want_code, named) in cases {
        let (status, answer) = env
            .post(Some(&env.acme), "/api/import/connect", body.clone())
            .await;
        assert_eq!(
            (status, code(&answer)),
            (want_status, want_code),
            "{body}: {answer}"
        );
        assert!(message(&answer).contains(named), "{body}: {answer}");
        assert!(
            !answer.to_string().contains(secret),
            "never echoed: {answer}"
        );
    }
    assert_eq!(env.pipeline(), before, "nothing was written");

    // Without a key, or with a bad one: 401 on every import route.
    for path in ["/api/import/status/pd", "/api/jobs/job_x"] {
        for key in [None, Some("rlk_nope")] {
            let (status, _) = env.get(key, path).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }
    }
    for path in [
        "/api/import/connect",
        "/api/import/sync/pd",
        "/api/import/files/up_ab/apply",
    ] {
        let (status, _) = env.post(None, path, json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (content_type, body) = form("d.csv", b"id\n1\n", &[("dataset", "raw.crm_deals")]);
    let r = env
        .client
        .post(format!("{}/api/import/files", env.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A name taken in the workspace: 409; base_url refused when the server does not allow it.
    let ok = json!({"source": "pipedrive", "name": "pd", "credentials": {"api_token": var}, "sync": false});
    let (status, body) = env
        .post(Some(&env.acme), "/api/import/connect", ok.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sync_started"], false);
    let (status, body) = env.post(Some(&env.acme), "/api/import/connect", ok).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "connection_exists")
    );
    let strict = self::env(ServeConfig {
        allow_connection_base_url: false,
        ..config()
    })
    .await;
    let (status, body) = strict
        .post(
            Some(&strict.acme),
            "/api/import/connect",
            json!({"source": "pipedrive", "credentials": {"api_token": var}, "base_url": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "base_url_not_allowed")
    );
}

const FIRST: &str = "id,name,amount\n1,Acme,10\n2,Globex,20\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_with_replace_merge_and_append() {
    let env = env(config()).await;
    let key = env.acme.clone();
    let select = "SELECT id, name, amount FROM raw.crm_deals ORDER BY id";
    let (status, body) = env
        .upload(
            &key,
            "deals.csv",
            FIRST.as_bytes(),
            &[("dataset", "raw.crm_deals")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["import"]["rows"], 2, "{body}");
    assert_eq!(body["import"]["strategy"], "replace");
    assert_eq!(
        body["import"]["file"], "deals.csv",
        "the server's path is not shown"
    );
    assert_eq!(
        env.table("acme", select).await,
        ["1,Acme,10", "2,Globex,20"]
    );

    let (status, body) = env
        .upload(
            &key,
            "more.csv",
            b"id,name,amount\n2,Globex,25\n3,Initech,30\n",
            &[
                ("dataset", "raw.crm_deals"),
                ("strategy", "merge"),
                ("key", "id"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["import"]["inserted"].as_u64(),
            body["import"]["updated"].as_u64()
        ),
        (Some(1), Some(1)),
        "{body}"
    );
    assert_eq!(
        env.table("acme", select).await,
        ["1,Acme,10", "2,Globex,25", "3,Initech,30"]
    );

    let (status, body) = env
        .upload(
            &key,
            "extra.csv",
            b"id,name,amount\n4,Umbrella,40\n",
            &[("dataset", "raw.crm_deals"), ("strategy", "append")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(env.table("acme", select).await.len(), 4);

    // Another workspace's replace leaves acme's rows alone.
    let (status, body) = env
        .upload(
            &env.globex,
            "g.csv",
            b"id,name,amount\n7,Gx,1\n",
            &[("dataset", "raw.crm_deals")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = env
        .upload(
            &key,
            "solo.csv",
            b"id,name,amount\n9,Solo,1\n",
            &[("dataset", "raw.crm_deals"), ("strategy", "replace")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(env.table("acme", select).await, ["9,Solo,1"]);
    assert_eq!(env.table("globex", select).await, ["7,Gx,1"]);
    // Every upload is an import batch, as with `revlake import`.
    assert_eq!(
        env.table(
            "acme",
            "SELECT count(*) FROM ops.import_batches WHERE status = 'applied'"
        )
        .await,
        ["4"]
    );
    // Nothing is left in the upload folder.
    let uploads = env._dir.path().join("lake/_uploads");
    let left: Vec<_> = walk(&uploads);
    assert!(left.is_empty(), "{left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_writes_nothing_and_its_upload_applies_later() {
    let env = env(config()).await;
    let key = env.acme.clone();
    let (status, body) = env
        .upload(
            &key,
            "deals.csv",
            FIRST.as_bytes(),
            &[("dataset", "raw.crm_deals")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let version = env.version("raw.crm_deals").await;
    let batches = env.version("ops.import_batches").await;

    let (status, preview) = env
        .upload(
            &key,
            "more.csv",
            b"id,name,amount,region\n2,Globex,25,EU\n3,Initech,30,US\n3,Initech,31,US\n",
            &[
                ("dataset", "raw.crm_deals"),
                ("preview", "true"),
                ("key", "id"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["records"], 3);
    assert_eq!(preview["format"], "csv");
    let columns = preview["columns"].as_array().unwrap();
    let col = |name: &str| {
        columns
            .iter()
            .find(|c| c["column"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        col("amount")["data_type"],
        col("amount")["target_type"],
        "{preview}"
    );
    assert!(
        col("region")["target_type"].is_null(),
        "a new column: {preview}"
    );
    assert_eq!(preview["target_rows"], 2);
    assert_eq!(preview["duplicates"]["key"], json!(["id"]));
    assert_eq!(preview["duplicates"]["in_target"], 1, "{preview}");
    assert_eq!(preview["duplicates"]["in_file"], 1, "{preview}");
    assert_eq!(preview["recommended_strategy"], "merge", "{preview}");
    assert_eq!(preview["bad_records"], 0);
    // Nothing was written: the table and the batch log are as they were.
    assert_eq!(env.version("raw.crm_deals").await, version);
    assert_eq!(env.version("ops.import_batches").await, batches);

    let id = preview["upload_id"].as_str().unwrap();
    let (status, body) = env
        .post(
            Some(&env.globex),
            &format!("/api/import/files/{id}/apply"),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another workspace's upload: {body}"
    );
    let (status, body) = env
        .post(
            Some(&key),
            &format!("/api/import/files/{id}/apply"),
            json!({"strategy": "append"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["import"]["strategy"], "append");
    assert_eq!(
        env.table(
            "acme",
            "SELECT id, amount, region FROM raw.crm_deals ORDER BY id, amount"
        )
        .await,
        ["1,10,", "2,20,", "2,25,EU", "3,30,US", "3,31,US"]
    );
    let (status, _) = env
        .post(
            Some(&key),
            &format!("/api/import/files/{id}/apply"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_wrong_types_is_refused_naming_line_and_column() {
    let env = env(config()).await;
    let key = env.acme.clone();
    let (status, body) = env
        .upload(
            &key,
            "deals.csv",
            FIRST.as_bytes(),
            &[("dataset", "raw.crm_deals")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let version = env.version("raw.crm_deals").await;
    let batches = env.version("ops.import_batches").await;
    let (status, body) = env
        .upload(
            &key,
            "bad.csv",
            b"id,name,amount\n5,Hooli,50\n6,Pied Piper,lots\n",
            &[("dataset", "raw.crm_deals"), ("strategy", "append")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_records"),
        "{body}"
    );
    let m = message(&body);
    assert!(
        m.contains("line 3") && m.contains("`amount`") && m.contains("lots"),
        "{m}"
    );
    assert_eq!(
        env.version("raw.crm_deals").await,
        version,
        "nothing written"
    );
    assert_eq!(env.version("ops.import_batches").await, batches);
    assert_eq!(env.version("ops.quarantine").await, None);

    // With quarantine=true it lands like `revlake import`: the rest in, the misfit set aside.
    let (status, body) = env
        .upload(
            &key,
            "bad.csv",
            b"id,name,amount\n5,Hooli,50\n6,Pied Piper,lots\n",
            &[
                ("dataset", "raw.crm_deals"),
                ("strategy", "append"),
                ("quarantine", "true"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["import"]["rows"].as_u64(),
            body["import"]["quarantined"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        env.table("acme", "SELECT line FROM ops.quarantine").await,
        ["3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uploads_are_refused_with_400() {
    let env = env(config()).await;
    let key = env.acme.clone();
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        ("multipart/form-data".into(), b"--x\r\n".to_vec(), "bad_multipart"),
        (
            "multipart/form-data; boundary=zz".into(),
            b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nid\n1".to_vec(),
            "bad_multipart",
        ),
        ("application/json".into(), b"{}".to_vec(), "bad_multipart"),
        (
            "multipart/form-data; boundary=zz".into(),
            b"--zz\r\nContent-Disposition: form-data; name=\"dataset\"\r\n\r\nraw.crm_deals\r\n--zz--\r\n".to_vec(),
            "no_file",
        ),
    ];
    for (content_type, body, want) in cases {
        let (status, answer) = env.upload_raw(&key, &content_type, body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, want),
            "{content_type}: {answer}"
        );
    }
    for (fields, want) in [
        (vec![], "no_dataset"),
        (
            vec![("dataset", "raw.crm_deals"), ("strategy", "upsert")],
            "bad_strategy",
        ),
        (
            vec![("dataset", "raw.crm_deals"), ("colour", "red")],
            "bad_multipart",
        ),
    ] {
        let (status, answer) = env.upload(&key, "d.csv", b"id\n1\n", &fields).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, want),
            "{answer}"
        );
    }
    let (status, answer) = env
        .upload(&key, "d.bin", b"id\n1\n", &[("dataset", "raw.crm_deals")])
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_file"),
        "{answer}"
    );
    assert!(message(&answer).starts_with("d.bin: "), "{answer}");
    assert!(!message(&answer).contains("_uploads"), "{answer}");
    assert_eq!(env.version("raw.crm_deals").await, None);
    assert!(walk(&env._dir.path().join("lake/_uploads")).is_empty());
}

fn big_csv(rows: usize) -> Vec<u8> {
    let mut out = String::from("id,name,amount\n");
    for i in 0..rows {
        out.push_str(&format!(
            "{i},Company number {i} with a long name,{}\n",
            i * 3
        ));
    }
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_may_exceed_the_json_limit_but_not_max_upload() {
    let env = env(ServeConfig {
        max_upload_bytes: 400_000,
        ..config()
    })
    .await;
    let file = big_csv(5_000);
    assert!(
        file.len() > 64 * 1024 && file.len() < 400_000,
        "{}",
        file.len()
    );
    let (status, body) = env
        .upload(&env.acme, "big.csv", &file, &[("dataset", "raw.crm_deals")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["import"]["rows"], 5_000);
    // A JSON body of that size is still refused.
    let (status, _) = env
        .post(
            Some(&env.acme),
            "/api/import/sync/pd",
            json!({"x": "y".repeat(70_000)}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let huge = big_csv(12_000);
    assert!(huge.len() > 400_000);
    let (status, body) = env
        .upload(
            &env.acme,
            "huge.csv",
            &huge,
            &[("dataset", "raw.crm_other")],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(env.version("raw.crm_other").await, None);
    assert!(walk(&env._dir.path().join("lake/_uploads")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_flood_gets_429_and_valid_keys_still_pass() {
    let env = env(ServeConfig {
        anonymous_per_minute: 5,
        anonymous_burst: 5,
        ..config()
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..12 {
        let key = if i % 2 == 0 { None } else { Some("rlk_0000") };
        let r = env.client.get(format!("{}/api/jobs/job_x", env.base));
        let r = match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        };
        let response = r.send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response.headers().get("retry-after").cloned();
        }
        statuses.push(response.status());
    }
    assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5], "{statuses:?}");
    assert!(
        statuses[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(seconds >= 1);
    // The open document shares the address's budget.
    let (status, body) = env.get(None, "/api/openapi.json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // A valid key never spends it.
    for _ in 0..10 {
        let (status, body) = env.get(Some(&env.acme), "/api/jobs/job_x").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
}
