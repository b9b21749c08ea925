//! Warehouse exports against loopback mocks of the Snowflake SQL API and the BigQuery REST and
//! OAuth endpoints, replaying their documented reply shapes; and `--plan` output.

use std::path::Path;

use revlake::export::{ExportMode, ExportOptions, Status, run_export};
use revlake::lake::{DatasetRef, Lake, WriteMode};
use revlake::project::Project;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::{deals, deals_schema};

const KEY: &str = include_str!("files/export_test_key.pem");

/// A project with `staging.deals` declared and `pipeline` as its default pipeline, and a lake
/// in `<dir>/lake` holding two deals of acme and one of globex.
async fn project(dir: &Path, pipeline: &str) -> (Project, Lake) {
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::write(
        dir.join("schemas/staging.deals.toml"),
        crate::common::DEALS_SCHEMA,
    )
    .unwrap();
    std::fs::write(dir.join("pipelines/default.toml"), pipeline).unwrap();
    let project = Project::load(dir).unwrap();
    let lake = Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap();
    let batch = deals(&[
        ("acme", "d1", "demo", 100.0),
        ("acme", "d2", "proposal", 250.5),
        ("globex", "g1", "lead", 10.0),
    ]);
    lake.write("staging.deals".parse().unwrap())
        .with_schema(Some(&deals_schema("staging.deals")))
        .with_mode(WriteMode::Append)
        .with_batches(batch.schema(), vec![batch])
        .await
        .unwrap();
    (project, lake)
}

fn snowflake_pipeline(server: &str, stage: &Path, key_env: &str) -> String {
    let url = url::Url::parse(server).unwrap();
    format!(
        r#"lake = "lake"
[exports.sf]
type = "snowflake"
account = "acme-prod"
user = "loader"
host = "{}"
port = {}
protocol = "http"
database = "ANALYTICS"
schema = "REVLAKE"
warehouse = "LOAD_WH"
stage = "REVLAKE_STAGE"
stage_url = "{}"
auth = {{ type = "key_pair", private_key_env = "{key_env}" }}
select = ["staging.*"]
poll_ms = 10
"#,
        url.host_str().unwrap(),
        url.port().unwrap(),
        stage.display()
    )
}

fn bigquery_pipeline(server: &str, stage: &Path, cred_env: &str) -> String {
    let url = url::Url::parse(server).unwrap();
    format!(
        r#"lake = "lake"
[exports.bq]
type = "bigquery"
project = "acme-analytics"
dataset = "revlake"
location = "EU"
host = "{}"
port = {}
protocol = "http"
token_url = "{server}/token"
stage_url = "{}"
credentials_env = "{cred_env}"
select = ["deals"]
poll_ms = 10
"#,
        url.host_str().unwrap(),
        url.port().unwrap(),
        stage.display()
    )
}

fn set_env(var: &str, value: &str) {
    // Each test uses its own variable names, so parallel tests do not race on them.
    unsafe { std::env::set_var(var, value) };
}

fn ok_result(rows: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "resultSetMetaData": {"numRows": rows.as_array().map_or(0, |r| r.len()), "format": "jsonv2",
            "rowType": [{"name": "name", "type": "text"}, {"name": "type", "type": "text"}]},
        "data": rows,
        "code": "090001",
        "statementStatusUrl": "/api/v2/statements/01b0-ok",
        "sqlState": "00000",
        "statementHandle": "01b0-ok",
        "message": "Statement executed successfully.",
        "createdOn": 1_700_000_000_000u64
    }))
}

async fn statements(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/api/v2/statements")
        .map(|r| {
            r.body_json::<Value>().unwrap()["statement"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn options(warehouse: &str) -> ExportOptions {
    ExportOptions {
        warehouse: warehouse.into(),
        ..Default::default()
    }
}

async fn exports_rows(lake: &Lake) -> Vec<String> {
    crate::common::query(
        lake,
        "SELECT dataset, version, status, rows FROM ops.exports",
    )
    .await
}

/// Snowflake SQL API mock: CREATE / DESCRIBE (given columns) / ALTER / CREATE TRANSIENT /
/// COPY (202, then polled) / MERGE / DROP; the first request of all is answered 429.
async fn snowflake_mock(describe: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/statements"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/statements"))
        .and(body_string_contains("DESCRIBE TABLE"))
        .respond_with(ok_result(describe))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/statements"))
        .and(body_string_contains("COPY INTO"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "code": "333334",
            "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
            "statementHandle": "01b0-copy",
            "statementStatusUrl": "/api/v2/statements/01b0-copy"
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    // The first poll is still running, the second has the result.
    Mock::given(method("GET"))
        .and(path("/api/v2/statements/01b0-copy"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "code": "333334", "message": "Asynchronous execution in progress.",
            "statementHandle": "01b0-copy", "statementStatusUrl": "/api/v2/statements/01b0-copy"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/statements/01b0-copy"))
        .respond_with(ok_result(json!([[
            "acme/staging.deals/v1/part-00000.parquet",
            "LOADED",
            "3",
            "3"
        ]])))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/statements"))
        .respond_with(ok_result(json!([])))
        .with_priority(5)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn snowflake_export_runs_its_statements_in_order_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    // The target exists with three of the four columns: `amount` is new.
    let server = snowflake_mock(json!([
        ["WORKSPACE_ID", "VARCHAR(16777216)", "COLUMN", "N"],
        ["ID", "VARCHAR(16777216)", "COLUMN", "N"],
        ["STAGE", "VARCHAR(16777216)", "COLUMN", "Y"]
    ]))
    .await;
    set_env("REVLAKE_IT_SF_KEY_1", KEY);
    let (project, lake) = project(
        dir.path(),
        &snowflake_pipeline(&server.uri(), &stage, "REVLAKE_IT_SF_KEY_1"),
    )
    .await;

    let run = run_export(&lake, &project, &options("snowflake"))
        .await
        .unwrap();
    assert_eq!(run.error, None);
    let o = &run.outcomes[0];
    assert_eq!(
        (o.status, o.rows, o.files, o.mode),
        (Status::Succeeded, 3, 1, ExportMode::Merge)
    );
    assert_eq!(o.target_table, "ANALYTICS.REVLAKE.\"DEALS\"");

    let sent = statements(&server).await;
    let heads: Vec<&str> = sent.iter().map(|s| s.lines().next().unwrap()).collect();
    assert_eq!(
        heads,
        [
            // The 429'd request is retried with the same statement.
            "CREATE TABLE IF NOT EXISTS ANALYTICS.REVLAKE.\"DEALS\" (",
            "CREATE TABLE IF NOT EXISTS ANALYTICS.REVLAKE.\"DEALS\" (",
            "DESCRIBE TABLE ANALYTICS.REVLAKE.\"DEALS\"",
            "ALTER TABLE ANALYTICS.REVLAKE.\"DEALS\" ADD COLUMN \"AMOUNT\" FLOAT",
            "CREATE OR REPLACE TRANSIENT TABLE ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\" (",
            "COPY INTO ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\"",
            "MERGE INTO ANALYTICS.REVLAKE.\"DEALS\" AS t",
            "DROP TABLE IF EXISTS ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\"",
        ]
    );
    assert!(sent[5].contains("FROM @ANALYTICS.REVLAKE.REVLAKE_STAGE/_all/staging.deals/v1/"));
    assert!(
        sent[5].contains("FILE_FORMAT = (TYPE = PARQUET)\nMATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")
    );
    assert!(sent[6].contains("ON t.\"WORKSPACE_ID\" = s.\"WORKSPACE_ID\" AND t.\"ID\" = s.\"ID\""));
    // The staged file holds the lake's rows.
    let file = stage.join("_all/staging.deals/v1/part-00000.parquet");
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&file).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 3);

    // Auth: a key-pair JWT naming account, user and the key's fingerprint, and the request
    // context of the target.
    let requests = server.received_requests().await.unwrap();
    let first: &Request = &requests[0];
    assert_eq!(
        first
            .headers
            .get("X-Snowflake-Authorization-Token-Type")
            .unwrap(),
        "KEYPAIR_JWT"
    );
    let bearer = first
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let jwt = bearer.strip_prefix("Bearer ").unwrap();
    let key = revlake::export::keys::RsaKey::from_pem(KEY).unwrap();
    let (n, e) = key.public_components();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(
        claims["iss"],
        format!("ACME-PROD.LOADER.{}", key.fingerprint())
    );
    assert_eq!(claims["sub"], "ACME-PROD.LOADER");
    let body: Value = first.body_json().unwrap();
    assert_eq!(
        (body["database"].as_str(), body["warehouse"].as_str()),
        (Some("ANALYTICS"), Some("LOAD_WH"))
    );

    // Same Delta version again: skipped, nothing sent, recorded.
    let before = server.received_requests().await.unwrap().len();
    let again = run_export(&lake, &project, &options("snowflake"))
        .await
        .unwrap();
    assert_eq!(again.outcomes[0].status, Status::Skipped);
    assert_eq!(server.received_requests().await.unwrap().len(), before);
    assert_eq!(
        exports_rows(&lake).await,
        ["staging.deals,1,skipped,0", "staging.deals,1,succeeded,3"]
    );
}

#[tokio::test]
async fn snowflake_compilation_error_names_dataset_and_statement_and_leaves_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("COPY INTO"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "code": "002003",
            "message": "SQL compilation error:\nStage 'ANALYTICS.REVLAKE.REVLAKE_STAGE' does not exist or not authorized.",
            "sqlState": "02000",
            "statementHandle": "01b0-bad",
            "statementStatusUrl": "/api/v2/statements/01b0-bad"
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok_result(json!([])))
        .with_priority(5)
        .mount(&server)
        .await;
    set_env("REVLAKE_IT_SF_KEY_2", KEY);
    let (project, lake) = project(
        dir.path(),
        &snowflake_pipeline(
            &server.uri(),
            &dir.path().join("stage"),
            "REVLAKE_IT_SF_KEY_2",
        ),
    )
    .await;
    let run = run_export(&lake, &project, &options("snowflake"))
        .await
        .unwrap();
    let error = run.error.unwrap();
    assert!(error.contains("staging.deals"), "{error}");
    assert!(
        error.contains("002003") && error.contains("does not exist or not authorized"),
        "{error}"
    );
    assert!(error.contains("statement: COPY INTO"), "{error}");
    let sent = statements(&server).await;
    // No MERGE: the load table is dropped and the target is untouched.
    assert!(sent.iter().all(|s| !s.starts_with("MERGE")));
    assert!(
        sent.last()
            .unwrap()
            .starts_with("DROP TABLE IF EXISTS ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\"")
    );
    assert_eq!(exports_rows(&lake).await, ["staging.deals,1,failed,3"]);
}

#[tokio::test]
async fn snowflake_lossy_type_change_stops_before_anything_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let server = snowflake_mock(json!([
        ["WORKSPACE_ID", "VARCHAR(16777216)", "COLUMN", "N"],
        ["ID", "VARCHAR(16777216)", "COLUMN", "N"],
        ["AMOUNT", "NUMBER(38,0)", "COLUMN", "Y"]
    ]))
    .await;
    set_env("REVLAKE_IT_SF_KEY_3", KEY);
    let (project, lake) = project(
        dir.path(),
        &snowflake_pipeline(
            &server.uri(),
            &dir.path().join("stage"),
            "REVLAKE_IT_SF_KEY_3",
        ),
    )
    .await;
    let run = run_export(&lake, &project, &options("snowflake"))
        .await
        .unwrap();
    let error = run.error.unwrap();
    assert!(
        error.contains("staging.deals") && error.contains("`amount`"),
        "{error}"
    );
    assert!(
        error.contains("NUMBER(38,0)") && error.contains("FLOAT"),
        "{error}"
    );
    let sent = statements(&server).await;
    assert!(
        sent.iter()
            .all(|s| !s.starts_with("COPY") && !s.starts_with("MERGE"))
    );
}

#[tokio::test]
async fn missing_credentials_and_unknown_datasets_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (project, lake) = project(
        dir.path(),
        &snowflake_pipeline(
            "http://127.0.0.1:9",
            &dir.path().join("stage"),
            "REVLAKE_IT_UNSET_KEY",
        ),
    )
    .await;
    let e = run_export(&lake, &project, &options("snowflake"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("REVLAKE_IT_UNSET_KEY") && e.contains("is not set"),
        "{e}"
    );
    let mut o = options("snowflake");
    o.select = vec!["staging.dealz".into()];
    let e = run_export(&lake, &project, &o)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("staging.dealz") && e.contains("known: staging.deals"),
        "{e}"
    );
    let e = run_export(&lake, &project, &options("bigquery"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no bigquery target") && e.contains("sf (snowflake)"),
        "{e}"
    );
}

#[tokio::test]
async fn plan_writes_files_sql_and_job_json_without_any_network() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: any request would fail the plan.
    let (project, lake) = project(
        dir.path(),
        &format!(
            "{}\n{}",
            snowflake_pipeline(
                "http://127.0.0.1:9",
                &dir.path().join("stage"),
                "REVLAKE_IT_UNSET_KEY_P"
            ),
            bigquery_pipeline(
                "http://127.0.0.1:9",
                &dir.path().join("stage"),
                "REVLAKE_IT_UNSET_CRED_P"
            )
            .replace("lake = \"lake\"\n", "")
        ),
    )
    .await;
    let out = dir.path().join("plan");
    let mut o = options("snowflake");
    o.plan = Some(out.clone());
    o.workspace = Some(revlake::lake::WorkspaceId::new("acme").unwrap());
    let run = run_export(&lake, &project, &o).await.unwrap();
    assert_eq!(run.outcomes[0].status, Status::Planned);
    assert_eq!(run.outcomes[0].rows, 2);
    assert!(
        out.join("files/acme/staging.deals/v1/part-00000.parquet")
            .is_file()
    );
    let sql = std::fs::read_to_string(out.join("snowflake/staging.deals.sql")).unwrap();
    assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS ANALYTICS.REVLAKE.\"DEALS\" (\n  \"WORKSPACE_ID\" VARCHAR NOT NULL,"), "{sql}");
    assert!(
        sql.contains("COPY INTO ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\""),
        "{sql}"
    );
    assert!(
        sql.contains("MERGE INTO ANALYTICS.REVLAKE.\"DEALS\" AS t"),
        "{sql}"
    );

    let mut o = options("bigquery");
    o.plan = Some(out.clone());
    o.mode = Some(ExportMode::Append);
    run_export(&lake, &project, &o).await.unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("bigquery/staging.deals.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        schema,
        json!([
            {"name": "workspace_id", "type": "STRING", "mode": "REQUIRED"},
            {"name": "id", "type": "STRING", "mode": "REQUIRED"},
            {"name": "stage", "type": "STRING", "mode": "NULLABLE"},
            {"name": "amount", "type": "FLOAT64", "mode": "NULLABLE"}
        ])
    );
    let jobs: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("bigquery/staging.deals.jobs.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        jobs[0]["configuration"]["load"]["writeDisposition"],
        "WRITE_APPEND"
    );
    assert_eq!(jobs[0]["configuration"]["load"]["sourceFormat"], "PARQUET");
    // A plan records nothing.
    assert!(
        lake.try_load(&"ops.exports".parse::<DatasetRef>().unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

fn service_account(token_url: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "acme-analytics",
        "private_key_id": "k1",
        "private_key": KEY,
        "client_email": "revlake@acme-analytics.iam.gserviceaccount.com",
        "token_uri": token_url
    })
    .to_string()
}

async fn bigquery_mock(job_done: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/bigquery/v2/projects/acme-analytics/datasets/revlake/tables/deals"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": 404, "message": "Not found: Table acme-analytics:revlake.deals", "status": "NOT_FOUND"}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bigquery/v2/projects/acme-analytics/jobs"))
        .respond_with(|req: &Request| {
            let body: Value = req.body_json().unwrap();
            ResponseTemplate::new(200).set_body_json(json!({
                "kind": "bigquery#job",
                "jobReference": body["jobReference"],
                "configuration": body["configuration"],
                "status": {"state": "RUNNING"}
            }))
        })
        .mount(&server)
        .await;
    // The first poll of any job answers 503 (retried), then DONE.
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/bigquery/v2/projects/acme-analytics/jobs/revlake_.*$",
        ))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/bigquery/v2/projects/acme-analytics/jobs/revlake_.*$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_done))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

fn job_bodies(requests: &[Request]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/jobs"))
        .map(|r| r.body_json().unwrap())
        .collect()
}

#[tokio::test]
async fn bigquery_export_exchanges_a_service_account_jwt_loads_polls_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let server = bigquery_mock(json!({"status": {"state": "DONE"}})).await;
    set_env(
        "REVLAKE_IT_BQ_CRED_1",
        &service_account(&format!("{}/token", server.uri())),
    );
    let (project, lake) = project(
        dir.path(),
        &bigquery_pipeline(&server.uri(), &stage, "REVLAKE_IT_BQ_CRED_1"),
    )
    .await;
    let run = run_export(&lake, &project, &options("bigquery"))
        .await
        .unwrap();
    assert_eq!(run.error, None, "{run:?}");
    assert_eq!(run.outcomes[0].status, Status::Succeeded);
    assert_eq!(run.outcomes[0].target_table, "acme-analytics.revlake.deals");

    let requests = server.received_requests().await.unwrap();
    // The token exchange: an RS256 assertion for the service account, verified here.
    let token = &requests[0];
    assert_eq!(token.url.path(), "/token");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    let assertion = &form.iter().find(|(k, _)| k == "assertion").unwrap().1;
    let key = revlake::export::keys::RsaKey::from_pem(KEY).unwrap();
    let (n, e) = key.public_components();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("{}/token", server.uri())]);
    let claims = jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(
        claims["iss"],
        "revlake@acme-analytics.iam.gserviceaccount.com"
    );
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/bigquery");
    // Every API call carries the exchanged token.
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.headers.get("authorization").unwrap() == "Bearer ya29.test-token")
    );

    // Merge into a new table: create it, load the load table, MERGE.
    let jobs = job_bodies(&requests);
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    assert!(
        jobs[0]["configuration"]["query"]["query"]
            .as_str()
            .unwrap()
            .starts_with(
                "CREATE TABLE IF NOT EXISTS `acme-analytics.revlake.deals` (`workspace_id` STRING"
            )
    );
    let load = &jobs[1]["configuration"]["load"];
    assert_eq!(
        load,
        &json!({
            "sourceUris": [format!("{}/_all/staging.deals/v1/part-00000.parquet", std::fs::canonicalize(&stage).unwrap().display())],
            "sourceFormat": "PARQUET",
            "parquetOptions": {"enableListInference": true},
            "destinationTable": {"projectId": "acme-analytics", "datasetId": "revlake", "tableId": "deals__revlake_load"},
            "schema": {"fields": [
                {"name": "workspace_id", "type": "STRING", "mode": "REQUIRED"},
                {"name": "id", "type": "STRING", "mode": "REQUIRED"},
                {"name": "stage", "type": "STRING", "mode": "NULLABLE"},
                {"name": "amount", "type": "FLOAT64", "mode": "NULLABLE"}
            ]},
            "createDisposition": "CREATE_IF_NEEDED",
            "writeDisposition": "WRITE_TRUNCATE"
        })
    );
    assert_eq!(jobs[1]["jobReference"]["location"], "EU");
    let merge = jobs[2]["configuration"]["query"]["query"].as_str().unwrap();
    assert!(merge.starts_with("MERGE `acme-analytics.revlake.deals` AS t\nUSING `acme-analytics.revlake.deals__revlake_load` AS s"), "{merge}");
    assert_eq!(jobs[2]["configuration"]["query"]["useLegacySql"], false);
    // Polls name the job location; the load table is deleted after the merge.
    assert!(
        requests
            .iter()
            .any(|r| r.method.as_str() == "GET" && r.url.query() == Some("location=EU"))
    );
    assert!(
        requests.iter().any(|r| r.method.as_str() == "DELETE"
            && r.url.path().ends_with("/tables/deals__revlake_load"))
    );

    // A re-run of the same version: skipped, no job.
    let again = run_export(&lake, &project, &options("bigquery"))
        .await
        .unwrap();
    assert_eq!(again.outcomes[0].status, Status::Skipped);
    assert_eq!(
        job_bodies(&server.received_requests().await.unwrap()).len(),
        3
    );
}

#[tokio::test]
async fn bigquery_error_result_is_reported_with_the_job_and_nothing_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    let server = bigquery_mock(json!({"status": {
        "state": "DONE",
        "errorResult": {"reason": "invalid", "message": "Error while reading data, error message: Parquet column 'amount' has type DOUBLE which does not match the target cpp_type INT64."},
        "errors": [{"reason": "invalid", "message": "Error while reading data, error message: Parquet column 'amount' has type DOUBLE which does not match the target cpp_type INT64."}]
    }}))
    .await;
    set_env(
        "REVLAKE_IT_BQ_CRED_2",
        &service_account(&format!("{}/token", server.uri())),
    );
    let (project, lake) = project(
        dir.path(),
        &bigquery_pipeline(
            &server.uri(),
            &dir.path().join("stage"),
            "REVLAKE_IT_BQ_CRED_2",
        ),
    )
    .await;
    let run = run_export(&lake, &project, &options("bigquery"))
        .await
        .unwrap();
    let error = run.error.unwrap();
    assert!(
        error.contains("staging.deals") && error.contains("job revlake_deals_create_"),
        "{error}"
    );
    assert!(
        error.contains("invalid: Error while reading data"),
        "{error}"
    );
    let jobs = job_bodies(&server.received_requests().await.unwrap());
    assert!(jobs.iter().all(|j| {
        !j["configuration"]["query"]["query"]
            .as_str()
            .unwrap_or("")
            .starts_with("MERGE")
    }));
    assert_eq!(exports_rows(&lake).await, ["staging.deals,1,failed,3"]);
}
