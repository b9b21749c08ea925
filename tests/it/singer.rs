//! Singer taps and Airbyte sources run as subprocesses: the fixture tap in `tests/taps/` (both
//! protocols) lands two typed streams, merges by key, resumes from its own state, and fails
//! without committing past its last state; a real Singer tap from PyPI (tap-jsonl) on a local
//! file, where installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use revlake::lake::{Lake, WorkspaceId};
use revlake::sources::registry;
use revlake::sources::source::Connection;
use revlake::sources::stateful::stored_state;
use revlake::sources::sync::{StreamOutcome, SyncOptions, sync_source};
use revlake::sql::{SessionOptions, SqlSession};
use serde_json::{Value, json};

use crate::common::{count, memory_lake, rows};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/taps/tap_fixture.py")
}

fn customer(id: i64, name: &str, balance: f64, updated_at: &str) -> Value {
    json!({"id": id, "name": name, "balance": balance, "active": id % 2 == 1,
           "updated_at": updated_at, "tags": ["t", name]})
}

fn event(seq: i64, kind: &str) -> Value {
    json!({"seq": seq, "kind": kind, "at": format!("2025-01-0{seq}T09:00:00Z"), "payload": {"n": seq}})
}

fn write_data(dir: &Path, customers: &[Value], events: &[Value]) -> PathBuf {
    let path = dir.join("data.json");
    std::fs::write(
        &path,
        json!({"customers": customers, "events": events}).to_string(),
    )
    .unwrap();
    path
}

/// A connection `tap` running the fixture (`airbyte`: in the Airbyte protocol) on `data`, with
/// `extra` config switches.
fn connection(source: &str, data: &Path, extra: Value) -> Connection {
    let mut config = toml::Table::new();
    config.insert("data".into(), data.display().to_string().into());
    if let Value::Object(m) = extra {
        for (k, v) in m {
            config.insert(k, toml::Value::try_from(v).unwrap());
        }
    }
    let mut options = toml::Table::new();
    options.insert(
        "command".into(),
        toml::Value::Array(vec![
            "python3".into(),
            fixture().display().to_string().into(),
        ]),
    );
    options.insert("config".into(), config.into());
    Connection {
        name: "tap".into(),
        source: source.into(),
        base_url: None,
        credentials: BTreeMap::new(),
        streams: Vec::new(),
        request_budget: None,
        options,
    }
}

fn acme() -> WorkspaceId {
    WorkspaceId::new("acme").unwrap()
}

async fn sync(lake: &Lake, c: &Connection) -> revlake::sources::Result<Vec<StreamOutcome>> {
    let source = registry::open(c)?;
    sync_source(
        lake,
        source.as_ref(),
        c,
        &acme(),
        &SyncOptions::default(),
        &mut |_| {},
    )
    .await
}

fn by_stream<'a>(outcomes: &'a [StreamOutcome], stream: &str) -> &'a StreamOutcome {
    outcomes
        .iter()
        .find(|o| o.stream == stream)
        .unwrap_or_else(|| panic!("no outcome for {stream}: {outcomes:?}"))
}

async fn query(lake: &Lake, sql: &str) -> Vec<String> {
    let session = SqlSession::open(lake, &SessionOptions::default())
        .await
        .unwrap();
    rows(&session, sql).await
}

async fn column_type(lake: &Lake, dataset: &str, column: &str) -> DataType {
    let schema = lake
        .arrow_schema(&dataset.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    schema.field_with_name(column).unwrap().data_type().clone()
}

#[tokio::test]
async fn a_singer_tap_lands_typed_streams_merges_by_key_and_resumes_from_its_state() {
    assert!(registry::vendors().iter().any(|v| v.name == "singer"));
    assert!(registry::vendors().iter().any(|v| v.name == "airbyte"));
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(
        dir.path(),
        &[
            customer(1, "Acme", 10.5, "2025-01-01T10:00:00Z"),
            customer(2, "Globex", 20.0, "2025-01-02T10:00:00Z"),
        ],
        &[event(1, "open"), event(2, "click")],
    );
    let report = dir.path().join("report.json");
    let var = format!("TAP_KEY_{}", uuid::Uuid::new_v4().simple());
    let secret = format!("sk-{}", uuid::Uuid::new_v4().simple());
    // SAFETY: a uniquely named variable only this test reads.
    unsafe { std::env::set_var(&var, &secret) };
    let mut c = connection(
        "singer",
        &data,
        json!({"require": "api_key", "report": report.display().to_string()}),
    );
    c.credentials.insert("api_key".into(), var);

    let lake = memory_lake().await;
    let first = sync(&lake, &c).await.unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    for o in &first {
        assert!(o.error.is_none(), "{:?}", o.error);
        assert_eq!(o.records, 2);
        assert_eq!(o.source, "singer");
    }
    assert_eq!(by_stream(&first, "customers").dataset, "raw.tap_customers");
    assert_eq!(by_stream(&first, "events").dataset, "raw.tap_events");

    // The credential reached the tap in a 0600 config file that is gone after the run.
    let reported: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(reported["mode"], "0o600");
    assert!(!Path::new(reported["path"].as_str().unwrap()).exists());

    // Typed from the SCHEMA messages.
    let ts = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
    for (column, ty) in [
        ("id", DataType::Int64),
        ("balance", DataType::Float64),
        ("active", DataType::Boolean),
        ("updated_at", ts.clone()),
        ("tags", DataType::Utf8),
    ] {
        assert_eq!(
            column_type(&lake, "raw.tap_customers", column).await,
            ty,
            "{column}"
        );
    }
    assert_eq!(column_type(&lake, "raw.tap_events", "at").await, ts);
    assert_eq!(
        query(
            &lake,
            "SELECT id, name, balance, active, CAST(updated_at AS VARCHAR), tags, workspace_id \
             FROM raw.tap_customers"
        )
        .await,
        [
            "1,Acme,10.5,true,2025-01-01T10:00:00Z,[\"t\",\"Acme\"],acme",
            "2,Globex,20.0,false,2025-01-02T10:00:00Z,[\"t\",\"Globex\"],acme",
        ]
    );
    let state = stored_state(&lake, &c, &acme()).await.unwrap().unwrap();
    assert_eq!(
        state,
        json!({"bookmarks": {"customers": "2025-01-02T10:00:00Z", "events": 2}})
    );

    // The second run gets that state back: only the changed customer, the new one and the new
    // event come; the customer merges on its key, the keyless events append.
    write_data(
        dir.path(),
        &[
            customer(1, "Acme", 10.5, "2025-01-01T10:00:00Z"),
            customer(2, "Globex Corp", 25.0, "2025-01-05T10:00:00Z"),
            customer(3, "Initech", 30.0, "2025-01-06T10:00:00Z"),
        ],
        &[event(1, "open"), event(2, "click"), event(3, "close")],
    );
    let second = sync(&lake, &c).await.unwrap();
    assert_eq!(by_stream(&second, "customers").records, 2);
    assert_eq!(by_stream(&second, "events").records, 1);
    assert_eq!(count(&lake, "raw.tap_customers").await, 3);
    assert_eq!(count(&lake, "raw.tap_events").await, 3);
    assert_eq!(
        query(&lake, "SELECT id, name FROM raw.tap_customers").await,
        ["1,Acme", "2,Globex Corp", "3,Initech"]
    );
    assert_eq!(
        query(&lake, "SELECT seq, kind, payload FROM raw.tap_events").await,
        ["1,open,{\"n\":1}", "2,click,{\"n\":2}", "3,close,{\"n\":3}"]
    );
    let log = query(
        &lake,
        "SELECT object, source, status, records_processed FROM ops.sync_log",
    )
    .await;
    assert_eq!(
        log,
        [
            "customers,singer,succeeded,2",
            "customers,singer,succeeded,2",
            "events,singer,succeeded,1",
            "events,singer,succeeded,2",
        ]
    );
    let logged = query(&lake, "SELECT * FROM ops.sync_log").await.join("\n");
    assert!(!logged.contains(&secret));
}

/// Six interleaved records with a STATE after every second one.
fn six_records(dir: &Path) -> PathBuf {
    write_data(
        dir,
        &[
            customer(1, "Acme", 1.0, "2025-01-01T10:00:00Z"),
            customer(2, "Globex", 2.0, "2025-01-02T10:00:00Z"),
            customer(3, "Initech", 3.0, "2025-01-03T10:00:00Z"),
        ],
        &[event(1, "open"), event(2, "click"), event(3, "close")],
    )
}

#[tokio::test]
async fn a_tap_exiting_non_zero_commits_nothing_past_its_last_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = six_records(dir.path());
    let lake = memory_lake().await;
    let c = connection("singer", &data, json!({"fail_after": 3}));
    let outcomes = sync(&lake, &c).await.unwrap();
    let error = by_stream(&outcomes, "customers").error.clone().unwrap();
    assert!(error.contains("tap `tap_fixture.py`"), "{error}");
    assert!(error.contains("exited with code 1"), "{error}");
    assert!(
        error.contains("boom: the upstream connection was lost"),
        "{error}"
    );
    assert_eq!(
        by_stream(&outcomes, "events").error.as_deref(),
        Some(error.as_str())
    );
    // The first two records were committed with their state; the third was not.
    assert_eq!(by_stream(&outcomes, "customers").records, 1);
    assert_eq!(by_stream(&outcomes, "customers").failed, 1);
    assert_eq!(count(&lake, "raw.tap_customers").await, 1);
    assert_eq!(count(&lake, "raw.tap_events").await, 1);
    assert_eq!(
        stored_state(&lake, &c, &acme()).await.unwrap().unwrap(),
        json!({"bookmarks": {"customers": "2025-01-01T10:00:00Z", "events": 1}})
    );
    let log = query(&lake, "SELECT object, status FROM ops.sync_log").await;
    assert_eq!(log, ["customers,failed", "events,failed"]);

    // Fixed, the next run resumes from that state and ends with exactly the source's records.
    let c = connection("singer", &data, json!({}));
    let outcomes = sync(&lake, &c).await.unwrap();
    assert_eq!(by_stream(&outcomes, "customers").records, 2);
    assert_eq!(count(&lake, "raw.tap_customers").await, 3);
    assert_eq!(count(&lake, "raw.tap_events").await, 3);
}

#[tokio::test]
async fn a_malformed_line_fails_naming_its_line_and_keeps_the_last_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = six_records(dir.path());
    let lake = memory_lake().await;
    // Two empty lines first (accepted), then 2 SCHEMA, ACTIVATE_VERSION, 2 RECORD, STATE,
    // 1 RECORD: the bad line is the 10th.
    let c = connection(
        "singer",
        &data,
        json!({"malformed_after": 3, "banner": true}),
    );
    let outcomes = sync(&lake, &c).await.unwrap();
    let error = by_stream(&outcomes, "customers").error.clone().unwrap();
    assert!(error.contains("stdout line 10"), "{error}");
    assert!(error.contains("this is not a message"), "{error}");
    assert_eq!(count(&lake, "raw.tap_customers").await, 1);
    // The STATE the tap printed after the bad line was never read.
    assert_eq!(
        stored_state(&lake, &c, &acme()).await.unwrap().unwrap(),
        json!({"bookmarks": {"customers": "2025-01-01T10:00:00Z", "events": 1}})
    );
}

#[tokio::test]
async fn a_record_before_its_schema_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = six_records(dir.path());
    let lake = memory_lake().await;
    let c = connection("singer", &data, json!({"ghost_record": true}));
    let error = sync(&lake, &c).await.unwrap_err().to_string();
    assert!(error.contains("stdout line 1"), "{error}");
    assert!(error.contains("\"ghost\" before its SCHEMA"), "{error}");
    assert!(stored_state(&lake, &c, &acme()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_missing_credential_or_command_is_refused_before_the_tap_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = six_records(dir.path());
    let mut c = connection("singer", &data, json!({}));
    c.credentials
        .insert("api_key".into(), "REVLAKE_TEST_UNSET_TAP_KEY".into());
    let e = registry::open(&c).err().unwrap().to_string();
    assert!(e.contains("REVLAKE_TEST_UNSET_TAP_KEY"), "{e}");
    let mut c = connection("singer", &data, json!({}));
    c.options.remove("command");
    let e = registry::open(&c).err().unwrap().to_string();
    assert!(e.contains("options.command"), "{e}");
}

#[tokio::test]
async fn an_airbyte_source_lands_with_a_discovered_catalog_and_per_stream_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(
        dir.path(),
        &[
            customer(1, "Acme", 10.5, "2025-01-01T10:00:00Z"),
            customer(2, "Globex", 20.0, "2025-01-02T10:00:00Z"),
        ],
        &[event(1, "open")],
    );
    let lake = memory_lake().await;
    let c = connection("airbyte", &data, json!({}));
    let first = sync(&lake, &c).await.unwrap();
    for o in &first {
        assert!(o.error.is_none(), "{:?}", o.error);
        assert_eq!(o.source, "airbyte");
    }
    assert_eq!(by_stream(&first, "customers").records, 2);
    assert_eq!(
        column_type(&lake, "raw.tap_customers", "balance").await,
        DataType::Float64
    );
    let state = stored_state(&lake, &c, &acme()).await.unwrap().unwrap();
    let streams: Vec<&str> = state
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"]["stream_descriptor"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["customers", "events"]);

    write_data(
        dir.path(),
        &[
            customer(1, "Acme", 10.5, "2025-01-01T10:00:00Z"),
            customer(2, "Globex Corp", 25.0, "2025-01-05T10:00:00Z"),
        ],
        &[event(1, "open"), event(2, "click")],
    );
    let second = sync(&lake, &c).await.unwrap();
    assert_eq!(by_stream(&second, "customers").records, 1);
    assert_eq!(by_stream(&second, "events").records, 1);
    assert_eq!(
        query(&lake, "SELECT id, name FROM raw.tap_customers").await,
        ["1,Acme", "2,Globex Corp"]
    );
    assert_eq!(count(&lake, "raw.tap_events").await, 2);
    let kept = stored_state(&lake, &c, &acme()).await.unwrap().unwrap();

    // A TRACE error fails the run at its line, keeping the last state.
    let failing = connection("airbyte", &data, json!({"fail_after": 0}));
    write_data(
        dir.path(),
        &[customer(3, "Initech", 1.0, "2025-01-09T10:00:00Z")],
        &[],
    );
    let e = sync(&lake, &failing).await.unwrap_err().to_string();
    assert!(e.contains("upstream connection lost"), "{e}");
    assert!(e.contains("stdout line 1"), "{e}");
    assert_eq!(
        stored_state(&lake, &c, &acme()).await.unwrap().unwrap(),
        kept
    );
}

/// Whether the PyPI tap `tap-jsonl` can run; under CI (env `CI` set) a missing tap fails.
fn tap_jsonl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("tap-jsonl"))
            .find(|p| p.is_file())
    });
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("tap-jsonl is not installed but CI is set: .ci/run installs it");
    }
    if found.is_none() {
        eprintln!("skipping the real Singer tap check: `pip install tap-jsonl` to run it");
    }
    found
}

#[tokio::test]
async fn the_pypi_tap_jsonl_lands_a_local_file() {
    let Some(tap) = tap_jsonl() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deals.jsonl");
    std::fs::write(
        &file,
        "{\"id\": 1, \"name\": \"Acme\", \"amount\": 10.5, \"updated_at\": \"2025-01-01T10:00:00Z\"}\n\
         {\"id\": 2, \"name\": \"Globex\", \"amount\": 20, \"updated_at\": \"2025-01-02T10:00:00Z\"}\n",
    )
    .unwrap();
    let mut config = toml::Table::new();
    config.insert("path".into(), file.display().to_string().into());
    config.insert("stream_name".into(), "deals".into());
    config.insert("primary_keys".into(), toml::Value::Array(vec!["id".into()]));
    let mut options = toml::Table::new();
    options.insert(
        "command".into(),
        toml::Value::Array(vec![tap.display().to_string().into()]),
    );
    options.insert("config".into(), config.into());
    let c = Connection {
        name: "jsonl".into(),
        source: "singer".into(),
        base_url: None,
        credentials: BTreeMap::new(),
        streams: Vec::new(),
        request_budget: None,
        options,
    };
    let lake = memory_lake().await;
    let outcomes = sync(&lake, &c).await.unwrap();
    let o = by_stream(&outcomes, "deals");
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.records, 2);
    assert_eq!(
        column_type(&lake, "raw.jsonl_deals", "id").await,
        DataType::Int64
    );
    assert_eq!(
        query(
            &lake,
            "SELECT id, name, CAST(updated_at AS VARCHAR) FROM raw.jsonl_deals"
        )
        .await,
        [
            "1,Acme,2025-01-01T10:00:00Z",
            "2,Globex,2025-01-02T10:00:00Z"
        ]
    );
    assert!(stored_state(&lake, &c, &acme()).await.unwrap().is_some());
    // A second run with the state merges on the key: still two rows.
    sync(&lake, &c).await.unwrap();
    assert_eq!(count(&lake, "raw.jsonl_deals").await, 2);
}
