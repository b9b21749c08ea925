//! `revlake export snowflake` against a real engine: fakesnow (PyPI), a Snowflake emulator on
//! DuckDB that speaks the drivers' connector protocol, started on 127.0.0.1 by the test. The
//! binary logs in, creates the table, creates the internal stage, `PUT`s the Parquet files
//! (uploaded to the presigned URL fakesnow answers with), `COPY INTO`s a load table, `MERGE`s
//! on the primary key; a second run changes nothing; a new lake column is added to the target
//! with `ALTER TABLE ADD COLUMN`. Counts, keys and sums are read back from fakesnow.
//!
//! `.ci/run` installs fakesnow in a virtualenv and puts its command on PATH; under CI (env `CI`
//! set) a missing fakesnow fails the test, elsewhere it is skipped with the reason.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use revlake::export::SnowflakeConfig;
use revlake::export::snowflake::SnowflakeClient;
use revlake::lake::{Lake, WriteMode};
use revlake::project::DatasetSchema;

use crate::common::{DEALS_SCHEMA, deals, deals_schema};

const PASSWORD_ENV: &str = "REVLAKE_IT_FAKESNOW_PASSWORD";

/// The `fakesnow` command on PATH; under CI a missing one fails.
fn fakesnow() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("fakesnow"))
            .find(|p| p.is_file())
    });
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("fakesnow is not on PATH but CI is set: .ci/run installs it");
    }
    if found.is_none() {
        eprintln!(
            "skipping the fakesnow export test: install it (`pip install 'fakesnow[server]==0.12.1' 'snowflake-connector-python<5'`) and put `fakesnow` on PATH"
        );
    }
    found
}

/// A fakesnow server on a free loopback port, killed when dropped.
struct Fakesnow {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Fakesnow {
    fn start(bin: &Path, dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("fakesnow.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["-s", "-p", &port.to_string(), "--host", "127.0.0.1"])
            // Its access log is read by the test: unbuffered.
            .env("PYTHONUNBUFFERED", "1")
            // Its internal stages live in a temporary folder it never removes: the test's.
            .env("TMPDIR", dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start fakesnow");
        let mut server = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("fakesnow exited with {status}: {}", server.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "fakesnow did not listen on {port} within 90 s: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Fakesnow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipeline(port: u16, table_prefix: &str) -> String {
    format!(
        r#"lake = "lake"
[exports.sf]
type = "snowflake"
api = "connector"
account = "fakesnow"
user = "loader"
host = "127.0.0.1"
port = {port}
protocol = "http"
database = "ANALYTICS"
schema = "REVLAKE"
stage = "REVLAKE_STAGE"
auth = {{ type = "password", password_env = "{PASSWORD_ENV}" }}
select = ["raw.*"]
table_prefix = "{table_prefix}"
poll_ms = 50
max_attempts = 2
"#
    )
}

fn export(project: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(project)
        .arg("--lake")
        .arg(project.join("lake"))
        .args(["export", "snowflake"])
        .args(args)
        .env(PASSWORD_ENV, "any password: fakesnow checks none")
        .env_remove("REVLAKE_LAKE")
        .output()
        .expect("run revlake")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A client of the same fakesnow, to read the target back; `env` names its password variable
/// (one per test, so parallel tests do not race on it).
async fn reader(port: u16, env: &str) -> SnowflakeClient {
    let config: SnowflakeConfig =
        match toml::from_str(&pipeline(port, "").replace(PASSWORD_ENV, env))
            .map(|t: toml::Table| t["exports"]["sf"].clone())
            .unwrap()
            .try_into::<revlake::export::ExportConfig>()
            .unwrap()
        {
            revlake::export::ExportConfig::Snowflake(c) => c,
            other => panic!("{other:?}"),
        };
    unsafe { std::env::set_var(env, "reader") };
    SnowflakeClient::connect("sf", &config, reqwest::Client::new())
        .await
        .unwrap()
}

async fn rows(client: &SnowflakeClient, sql: &str) -> Vec<Vec<Option<String>>> {
    client.execute("(test)", sql).await.unwrap().rows
}

/// `(count, distinct keys, sum of amount)` of a table in fakesnow.
async fn warehouse_totals(client: &SnowflakeClient, table: &str) -> (u64, u64, f64) {
    let r = rows(
        client,
        &format!(
            "SELECT COUNT(*), COUNT(DISTINCT \"WORKSPACE_ID\" || '/' || \"ID\"), SUM(\"AMOUNT\") FROM ANALYTICS.REVLAKE.\"{table}\""
        ),
    )
    .await;
    let cell = |i: usize| r[0][i].clone().unwrap_or_default();
    (
        cell(0).parse().unwrap(),
        cell(1).parse().unwrap(),
        cell(2).parse().unwrap_or(0.0),
    )
}

/// The same totals of `raw.deals` in the lake.
async fn lake_totals(lake: &Lake) -> (u64, u64, f64) {
    let r = crate::common::query(
        lake,
        "SELECT count(*) AS n, count(DISTINCT concat(workspace_id, '/', id)) AS k, sum(amount) AS s FROM raw.deals",
    )
    .await;
    // rows() gives the header-less cells comma-joined.
    let cells: Vec<&str> = r[0].split(',').map(str::trim).collect();
    (
        cells[0].parse().unwrap(),
        cells[1].parse().unwrap(),
        cells[2].parse().unwrap(),
    )
}

/// `workspace/id=amount[|segment]` of every row, sorted, from fakesnow.
async fn warehouse_rows(client: &SnowflakeClient, table: &str, extra: Option<&str>) -> Vec<String> {
    let extra_col = extra.map_or(String::new(), |c| format!(", \"{c}\""));
    rows(
        client,
        &format!(
            "SELECT \"WORKSPACE_ID\", \"ID\", \"AMOUNT\"{extra_col} FROM ANALYTICS.REVLAKE.\"{table}\" ORDER BY 1, 2"
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        let amount: f64 = r[2].as_deref().unwrap().parse().unwrap();
        let mut s = format!(
            "{}/{}={amount}",
            r[0].as_deref().unwrap(),
            r[1].as_deref().unwrap()
        );
        if extra.is_some() {
            s.push_str(&format!("|{}", r[3].as_deref().unwrap_or("null")));
        }
        s
    })
    .collect()
}

async fn project(dir: &Path, port: u16, table_prefix: &str) -> Lake {
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::write(dir.join("schemas/raw.deals.toml"), DEALS_SCHEMA).unwrap();
    std::fs::write(
        dir.join("pipelines/default.toml"),
        pipeline(port, table_prefix),
    )
    .unwrap();
    let lake = Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap();
    let batch = deals(&[
        ("acme", "d1", "demo", 100.0),
        ("acme", "d2", "proposal", 250.5),
        ("globex", "g1", "lead", 10.25),
    ]);
    lake.write("raw.deals".parse().unwrap())
        .with_schema(Some(&deals_schema("raw.deals")))
        .with_mode(WriteMode::Append)
        .with_batches(batch.schema(), vec![batch])
        .await
        .unwrap();
    lake
}

const SEGMENT_SCHEMA: &str = r#"
[[columns]]
name = "segment"
type = "string"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn fakesnow_receives_put_copy_merge_then_nothing_then_a_new_column() {
    let Some(bin) = fakesnow() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Fakesnow::start(&bin, dir.path());
    let root = dir.path().join("project");
    let lake = project(&root, server.port, "").await;

    // 1. First export: create, stage, PUT, COPY, MERGE.
    let out = export(&root, &[]);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        server.log_text()
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("raw.deals") && stdout.contains("succeeded") && stdout.contains("3 rows"),
        "{stdout}"
    );
    let version = crate::common::query(&lake, "SELECT version FROM ops.exports").await;
    let [version] = version.as_slice() else {
        panic!("{version:?}")
    };
    let staged_file = format!("_all/raw.deals/v{version}/part-00000.parquet");
    let log = server.log_text();
    assert!(
        log.contains(&format!(
            "\"PUT /fs_bucket/ANALYTICS/REVLAKE/REVLAKE_STAGE/{staged_file} HTTP/1.1\" 200"
        )),
        "the file was not uploaded to fakesnow's stage: {log}"
    );
    let client = reader(server.port, "REVLAKE_IT_FAKESNOW_READER_1").await;
    assert_eq!(
        warehouse_totals(&client, "DEALS").await,
        lake_totals(&lake).await
    );
    assert_eq!(
        warehouse_rows(&client, "DEALS", None).await,
        ["acme/d1=100", "acme/d2=250.5", "globex/g1=10.25"]
    );
    let staged = rows(&client, "LIST @ANALYTICS.REVLAKE.REVLAKE_STAGE").await;
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert_eq!(
        staged[0][0].as_deref(),
        Some(format!("revlake_stage/{staged_file}").as_str())
    );
    // The load table is gone.
    let load_tables = rows(
        &client,
        "SELECT COUNT(*) FROM ANALYTICS.INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'DEALS__REVLAKE_LOAD'",
    )
    .await;
    assert_eq!(load_tables[0][0].as_deref(), Some("0"));

    // 2. Same Delta version: nothing is sent, nothing changes.
    let queries_before = server.log_text().matches("query-request").count();
    let out = export(&root, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("skipped"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        server.log_text().matches("query-request").count(),
        queries_before,
        "a re-run of the same version sent statements"
    );
    assert_eq!(
        warehouse_totals(&client, "DEALS").await,
        lake_totals(&lake).await
    );
    // (rows come back sorted)
    let exported =
        crate::common::query(&lake, "SELECT version, status, rows FROM ops.exports").await;
    assert_eq!(
        exported,
        [
            format!("{version},skipped,0"),
            format!("{version},succeeded,3")
        ]
    );

    // 3. The lake gains a column (raw tables evolve on merge) while a merge changes d1 and adds
    //    d3: the target gets the column (ALTER TABLE ADD COLUMN), d1 updated, d3 inserted, the
    //    others kept.
    let text_schema = format!("{DEALS_SCHEMA}{SEGMENT_SCHEMA}");
    std::fs::write(root.join("schemas/raw.deals.toml"), &text_schema).unwrap();
    let wider = DatasetSchema::parse(
        "raw.deals".parse().unwrap(),
        &text_schema,
        Path::new("raw.deals.toml"),
    )
    .unwrap();
    let base = deals(&[
        ("acme", "d1", "negotiation", 120.0),
        ("acme", "d3", "lead", 5.5),
    ]);
    let segment = std::sync::Arc::new(arrow::array::StringArray::from(vec!["smb", "enterprise"]));
    let mut fields: Vec<arrow::datatypes::Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(arrow::datatypes::Field::new(
        "segment",
        arrow::datatypes::DataType::Utf8,
        true,
    ));
    let mut columns = base.columns().to_vec();
    columns.push(segment);
    let batch = arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )
    .unwrap();
    lake.write("raw.deals".parse().unwrap())
        .with_schema(Some(&wider))
        .with_mode(WriteMode::Merge)
        .with_batches(batch.schema(), vec![batch])
        .await
        .unwrap();
    let out = export(&root, &[]);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        server.log_text()
    );
    let described = rows(&client, "DESCRIBE TABLE ANALYTICS.REVLAKE.\"DEALS\"").await;
    let names: Vec<&str> = described.iter().filter_map(|r| r[0].as_deref()).collect();
    assert_eq!(
        names,
        ["WORKSPACE_ID", "ID", "STAGE", "AMOUNT", "SEGMENT"],
        "{}\n{:?}",
        text(&out.stdout),
        crate::common::query(&lake, "SELECT * FROM raw.deals").await
    );
    assert_eq!(
        warehouse_totals(&client, "DEALS").await,
        lake_totals(&lake).await
    );
    assert_eq!(
        warehouse_rows(&client, "DEALS", Some("SEGMENT")).await,
        [
            "acme/d1=120|smb",
            "acme/d2=250.5|null",
            "acme/d3=5.5|enterprise",
            "globex/g1=10.25|null"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lossy_type_change_in_fakesnow_stops_the_export_and_leaves_the_target() {
    let Some(bin) = fakesnow() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Fakesnow::start(&bin, dir.path());
    let root = dir.path().join("project");
    let lake = project(&root, server.port, "LOSSY_").await;
    let client = reader(server.port, "REVLAKE_IT_FAKESNOW_READER_2").await;
    // The target exists with AMOUNT as an integer: the lake's float would lose its fractions.
    rows(
        &client,
        "CREATE TABLE ANALYTICS.REVLAKE.\"LOSSY_DEALS\" (\"WORKSPACE_ID\" VARCHAR NOT NULL, \"ID\" VARCHAR NOT NULL, \"AMOUNT\" NUMBER(38,0))",
    )
    .await;
    rows(
        &client,
        "INSERT INTO ANALYTICS.REVLAKE.\"LOSSY_DEALS\" VALUES ('acme', 'd0', 7)",
    )
    .await;
    let out = export(&root, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("raw.deals")
            && stderr.contains("`amount`")
            && stderr.contains("NUMBER(38,0)")
            && stderr.contains("FLOAT"),
        "{stderr}"
    );
    assert_eq!(
        warehouse_rows(&client, "LOSSY_DEALS", None).await,
        ["acme/d0=7"]
    );
    let columns = rows(&client, "DESCRIBE TABLE ANALYTICS.REVLAKE.\"LOSSY_DEALS\"").await;
    assert_eq!(columns.len(), 3, "no column was added: {columns:?}");
    let failed = crate::common::query(&lake, "SELECT status FROM ops.exports").await;
    assert_eq!(failed, ["failed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_one_workspace_in_fakesnow_keeps_the_others_rows() {
    let Some(bin) = fakesnow() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Fakesnow::start(&bin, dir.path());
    let root = dir.path().join("project");
    let _lake = project(&root, server.port, "REPL_").await;
    let client = reader(server.port, "REVLAKE_IT_FAKESNOW_READER_3").await;
    // The target holds another workspace's row and a stale row of acme.
    rows(
        &client,
        "CREATE TABLE ANALYTICS.REVLAKE.\"REPL_DEALS\" (\"WORKSPACE_ID\" VARCHAR NOT NULL, \"ID\" VARCHAR NOT NULL, \"STAGE\" VARCHAR, \"AMOUNT\" FLOAT)",
    )
    .await;
    rows(
        &client,
        "INSERT INTO ANALYTICS.REVLAKE.\"REPL_DEALS\" VALUES ('globex', 'g9', 'lead', 1), ('acme', 'stale', 'lead', 9)",
    )
    .await;
    let out = export(&root, &["--mode", "replace", "--workspace", "acme"]);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        server.log_text()
    );
    assert!(
        text(&out.stdout).contains("2 rows"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        warehouse_rows(&client, "REPL_DEALS", None).await,
        ["acme/d1=100", "acme/d2=250.5", "globex/g9=1"]
    );
}
