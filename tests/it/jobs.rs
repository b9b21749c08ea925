//! Jobs: a small job run end to end on a generated org and recorded in ops.job_runs; a failed
//! stage recorded with its error (and the command's non-zero exit); retries with backoff; the
//! lease refusing a second runner (recorded as skipped); the exports stage against a loopback
//! Snowflake SQL API, succeeding and failing (the warehouse's message recorded and alerted); the
//! scheduler on a one-second schedule for a bounded time without overlapping runs, stopped by
//! its shutdown signal; the metrics endpoint. Jobs as processes are in `jobs_process.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use revlake::jobs::lease::{Acquired, Leases};
use revlake::jobs::metrics::{Metrics, serve};
use revlake::jobs::runlog::{HistoryQuery, history};
use revlake::jobs::scheduler::{self, LeasedRun, SchedulerOptions, run_leased};
use revlake::jobs::{Job, RunRequest, RunStatus, Trigger, run_job};
use revlake::lake::{Lake, WorkspaceId};
use revlake::project::Project;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> WorkspaceId {
    WorkspaceId::new("demo").unwrap()
}

fn job(dir: &Path, name: &str, text: &str) -> Job {
    Job::parse(name, text, &dir.join(format!("jobs/{name}.toml"))).unwrap()
}

/// A bare project: a pipeline naming the lake, and these job files.
fn bare_project(dir: &Path, jobs: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("project");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::create_dir_all(root.join("jobs")).unwrap();
    std::fs::write(
        root.join("pipelines/default.toml"),
        format!(
            "lake = {:?}\nworkspace = \"demo\"\n",
            dir.join("lake").display().to_string()
        ),
    )
    .unwrap();
    for (name, text) in jobs {
        std::fs::write(root.join(format!("jobs/{name}.toml")), text).unwrap();
    }
    root
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_job_runs_end_to_end_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    let config = revlake::generate::GenerateConfig {
        deals: 300,
        seed: 5,
        ..revlake::generate::GenerateConfig::default()
    };
    revlake::generate::generate(&config, &exports, &mut |_| {}).unwrap();
    let project = Project::load(&repo()).unwrap();
    let lake = Lake::open(&dir.path().join("lake").display().to_string())
        .await
        .unwrap();
    let report = dir.path().join("reports/quality.html");
    let j = job(
        dir.path(),
        "small",
        &format!(
            "timeout = \"20m\"\n[retries]\nattempts = 1\n[stages.land]\ndir = {:?}\n[stages.models]\n[stages.mining]\n[stages.simulation]\nruns = 200\n[stages.scoring]\n[stages.alerts]\n[stages.report]\nquality = {:?}\n[stages.exports]\n",
            exports.display().to_string(),
            report.display().to_string()
        ),
    );
    let mut seen = Vec::new();
    let finished = run_job(
        &project,
        &lake,
        &j,
        RunRequest::manual(demo(), "test"),
        &mut |s| seen.push(s.stage.clone()),
    )
    .await;
    let run = &finished.run;
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run);
    assert_eq!(
        seen,
        [
            "land",
            "models",
            "mining",
            "simulation",
            "scoring",
            "alerts",
            "report",
            "exports"
        ]
    );
    let rows = |stage: &str| run.stages.iter().find(|s| s.stage == stage).unwrap().rows;
    assert!(rows("land") > 300, "{:#?}", run.stages);
    assert!(rows("models") > 300);
    assert!(rows("mining") > 0);
    assert!(rows("simulation") > 0);
    assert!(rows("scoring") > 0);
    let exports = run.stages.iter().find(|s| s.stage == "exports").unwrap();
    assert_eq!(exports.status, RunStatus::Skipped);
    assert!(
        exports.note.starts_with("no exports configured"),
        "{exports:?}"
    );
    // The summary: the forecast headline, the report written, no failed check.
    let f = finished
        .summary
        .forecast
        .as_ref()
        .expect("a forecast headline");
    assert!(
        f.p10 <= f.p50 && f.p50 <= f.p90 && f.open_deals > 0,
        "{f:?}"
    );
    assert_eq!(finished.summary.reports, std::slice::from_ref(&report));
    assert!(finished.summary.checks > 0);
    assert!(report.is_file());
    assert!(finished.recorded.as_ref().unwrap().is_some());

    let recorded = history(
        &lake,
        &HistoryQuery {
            job: Some("small".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.run_id, run.run_id);
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.trigger, Trigger::Manual);
    assert_eq!(r.workspace, "demo");
    // Seconds go through JSON text: compare them to the microsecond.
    let strip = |stages: &[revlake::jobs::StageRun]| -> Vec<String> {
        stages
            .iter()
            .map(|s| {
                format!(
                    "{} {:?} {} {} {:.6} {} {:?}",
                    s.stage, s.status, s.rows, s.attempts, s.seconds, s.note, s.error
                )
            })
            .collect()
    };
    assert_eq!(strip(&r.stages), strip(&run.stages));
    assert_eq!(r.rows(), run.rows());
    assert!(r.error.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_stage_is_recorded_with_its_error_and_the_rest_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let project = Project::load(&repo()).unwrap();
    let lake = Lake::open(&dir.path().join("lake").display().to_string())
        .await
        .unwrap();
    let j = job(
        dir.path(),
        "broken",
        "[retries]\nattempts = 3\nbackoff = \"10ms\"\n[stages.models]\nselect = [\"staging.nope\"]\n[stages.mining]\n",
    );
    let finished = run_job(
        &project,
        &lake,
        &j,
        RunRequest::manual(demo(), "test"),
        &mut |_| {},
    )
    .await;
    let run = finished.run;
    assert_eq!(run.status, RunStatus::Failed);
    let models = &run.stages[0];
    assert_eq!(models.status, RunStatus::Failed);
    // A bad selector is the user's: not retried.
    assert_eq!(models.attempts, 1);
    assert!(
        models.error.as_deref().unwrap().contains("staging.nope"),
        "{models:?}"
    );
    assert_eq!(run.stages[1].status, RunStatus::Skipped);
    assert!(run.error.as_deref().unwrap().starts_with("stage models:"));
    let recorded = history(&lake, &HistoryQuery::default()).await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, RunStatus::Failed);
    assert!(
        recorded[0]
            .error
            .as_deref()
            .unwrap()
            .contains("staging.nope")
    );

    // The command says so and exits non-zero.
    let root = bare_project(
        dir.path(),
        &[("broken", "[stages.models]\nselect = [\"staging.nope\"]\n")],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(&root)
        .args(["run-job", "broken"])
        .env_remove("REVLAKE_LAKE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("broken manual for demo: failed"),
        "{stdout}"
    );
    assert!(stdout.contains("staging.nope"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_sync_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let root = bare_project(dir.path(), &[]);
    // A connection whose credential variable is not set and whose API is nowhere.
    std::fs::write(
        root.join("pipelines/default.toml"),
        format!(
            "lake = {:?}\nworkspace = \"demo\"\n[connections.crm]\nsource = \"hubspot\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = {{ access_token = \"REVLAKE_TEST_JOBS_UNSET_TOKEN\" }}\n",
            dir.path().join("lake").display().to_string()
        ),
    )
    .unwrap();
    let project = Project::load(&root).unwrap();
    let lake = Lake::open(&dir.path().join("lake").display().to_string())
        .await
        .unwrap();
    let j = job(
        dir.path(),
        "sync",
        "[retries]\nattempts = 3\nbackoff = \"20ms\"\n[stages.sync]\n",
    );
    let started = std::time::Instant::now();
    let run = run_job(
        &project,
        &lake,
        &j,
        RunRequest::manual(demo(), "test"),
        &mut |_| {},
    )
    .await
    .run;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.stages[0].attempts, 3, "{:?}", run.stages);
    assert!(run.stages[0].error.as_deref().unwrap().contains("crm"));
    // Waited 20 ms, then 40 ms between the tries.
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_held_by_another_process_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let project = Project::load(&repo()).unwrap();
    let lake = Lake::open(&dir.path().join("lake").display().to_string())
        .await
        .unwrap();
    let j = job(dir.path(), "held", "[stages.exports]\n");
    let leases = Leases::for_lake(&lake).unwrap();
    let other = leases
        .acquire(
            "held",
            &demo(),
            "other-host:1:x",
            Duration::from_secs(600),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(matches!(other, Acquired::Held(_)));
    let outcome = run_leased(
        &project,
        &lake,
        &j,
        RunRequest::manual(demo(), "me"),
        Duration::from_secs(1),
        None,
        &mut |_| {},
    )
    .await
    .unwrap();
    match outcome {
        LeasedRun::Refused { holder, .. } => assert_eq!(holder, "other-host:1:x"),
        LeasedRun::Ran(f) => panic!("ran while held elsewhere: {:?}", f.run),
    }
    // Recorded as skipped, naming the holder, with no stage run.
    let recorded = history(&lake, &HistoryQuery::default()).await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    assert_eq!(recorded[0].status, RunStatus::Skipped);
    assert!(recorded[0].stages.is_empty());
    assert!(
        recorded[0]
            .error
            .as_deref()
            .unwrap()
            .contains("held by other-host:1:x"),
        "{:?}",
        recorded[0].error
    );
}

/// A project with `staging.deals` declared, a Snowflake export `sf` at `server` staging into
/// `<dir>/stage`, a signed-less webhook alert channel `ops` at `server`, and a lake holding
/// two deals of `demo` and one of `other`.
async fn export_project(dir: &Path, server: &str, token_env: &str) -> (Project, Lake) {
    let root = dir.join("project");
    std::fs::create_dir_all(root.join("schemas")).unwrap();
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::write(
        root.join("schemas/staging.deals.toml"),
        crate::common::DEALS_SCHEMA,
    )
    .unwrap();
    let url = url::Url::parse(server).unwrap();
    std::fs::write(
        root.join("pipelines/default.toml"),
        format!(
            r#"lake = {lake:?}
workspace = "demo"
[exports.sf]
type = "snowflake"
account = "acme-prod"
user = "loader"
host = "{host}"
port = {port}
protocol = "http"
database = "ANALYTICS"
schema = "REVLAKE"
stage = "REVLAKE_STAGE"
stage_url = {stage:?}
auth = {{ type = "oauth", token_env = "{token_env}" }}
select = ["staging.*"]
poll_ms = 10
max_attempts = 1

[alerts.channels.ops]
kind = "webhook"
url = "{server}/hooks/revlake"
"#,
            lake = dir.join("lake").display().to_string(),
            host = url.host_str().unwrap(),
            port = url.port().unwrap(),
            stage = dir.join("stage").display().to_string(),
        ),
    )
    .unwrap();
    // Each test uses its own variable, so parallel tests do not race on it.
    unsafe { std::env::set_var(token_env, "test-oauth-token") };
    let project = Project::load(&root).unwrap();
    let lake = Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap();
    let batch = crate::common::deals(&[
        ("demo", "d1", "demo", 100.0),
        ("demo", "d2", "proposal", 250.5),
        ("other", "o1", "lead", 10.0),
    ]);
    lake.write("staging.deals".parse().unwrap())
        .with_schema(Some(&crate::common::deals_schema("staging.deals")))
        .with_mode(revlake::lake::WriteMode::Append)
        .with_batches(batch.schema(), vec![batch])
        .await
        .unwrap();
    (project, lake)
}

/// A Snowflake SQL API on loopback answering every statement with success, except those
/// containing `fail_on` (HTTP 422, a compilation error); and the webhook receiver.
async fn snowflake_api(fail_on: Option<&str>) -> wiremock::MockServer {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, ResponseTemplate};
    let server = wiremock::MockServer::start().await;
    if let Some(text) = fail_on {
        Mock::given(method("POST"))
            .and(path("/api/v2/statements"))
            .and(body_string_contains(text))
            .respond_with(ResponseTemplate::new(422).set_body_json(serde_json::json!({
                "code": "002003",
                "message": "SQL compilation error:\nStage 'ANALYTICS.REVLAKE.REVLAKE_STAGE' does not exist or not authorized.",
                "sqlState": "02000",
                "statementHandle": "01b0-bad",
                "statementStatusUrl": "/api/v2/statements/01b0-bad"
            })))
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/api/v2/statements"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "resultSetMetaData": {"numRows": 0, "format": "jsonv2",
                "rowType": [{"name": "name", "type": "text"}, {"name": "type", "type": "text"}]},
            "data": [],
            "code": "090001",
            "statementStatusUrl": "/api/v2/statements/01b0-ok",
            "sqlState": "00000",
            "statementHandle": "01b0-ok",
            "message": "Statement executed successfully.",
            "createdOn": 1_700_000_000_000u64
        })))
        .with_priority(5)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks/revlake"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

async fn statements(server: &wiremock::MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/v2/statements")
        .map(|r| {
            r.body_json::<serde_json::Value>().unwrap()["statement"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exports_stage_loads_the_workspaces_rows_into_the_configured_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let server = snowflake_api(None).await;
    let (project, lake) =
        export_project(dir.path(), &server.uri(), "REVLAKE_IT_JOBS_SF_TOKEN_1").await;
    let j = job(
        dir.path(),
        "load",
        "[retries]\nattempts = 1\n[stages.exports]\n",
    );
    let finished = run_job(
        &project,
        &lake,
        &j,
        RunRequest::manual(demo(), "test"),
        &mut |_| {},
    )
    .await;
    let run = &finished.run;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let stage = &run.stages[0];
    assert_eq!(
        (stage.stage.as_str(), stage.rows),
        ("exports", 2),
        "{stage:?}"
    );
    assert_eq!(
        stage.note,
        "sf (snowflake): 1 datasets loaded, 0 unchanged, 2 rows"
    );
    assert_eq!(finished.summary.exports, std::slice::from_ref(&stage.note));
    let sent = statements(&server).await;
    assert!(
        sent.iter()
            .any(|s| s.starts_with("MERGE INTO ANALYTICS.REVLAKE.\"DEALS\"")),
        "{sent:#?}"
    );
    // Only the run's workspace was staged.
    assert!(
        sent.iter()
            .any(|s| s.contains("@ANALYTICS.REVLAKE.REVLAKE_STAGE/demo/staging.deals/v")),
        "{sent:#?}"
    );
    let exported: Vec<String> =
        crate::common::query(&lake, "SELECT dataset, status, rows FROM ops.exports").await;
    assert_eq!(exported, ["staging.deals,succeeded,2"]);

    // A target the pipeline does not have is refused when the job is loaded.
    let root = dir.path().join("project");
    std::fs::create_dir_all(root.join("jobs")).unwrap();
    std::fs::write(
        root.join("jobs/bad.toml"),
        "[stages.exports]\ntargets = [\"bq\"]\n",
    )
    .unwrap();
    let e = Project::load(&root).unwrap_err().to_string();
    assert!(
        e.contains("stages.exports.targets: pipeline `default` has no export `bq` (exports: sf)"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_export_fails_the_stage_with_the_warehouses_message_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let server = snowflake_api(Some("COPY INTO")).await;
    let (project, lake) =
        export_project(dir.path(), &server.uri(), "REVLAKE_IT_JOBS_SF_TOKEN_2").await;
    let j = job(
        dir.path(),
        "load",
        "[retries]\nattempts = 2\nbackoff = \"10ms\"\n[alerts]\nchannels = [\"ops\"]\n[stages.exports]\n",
    );
    let finished = run_job(
        &project,
        &lake,
        &j,
        RunRequest::manual(demo(), "test"),
        &mut |_| {},
    )
    .await;
    let run = &finished.run;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let stage = &run.stages[0];
    assert_eq!(stage.status, RunStatus::Failed);
    // The warehouse refused the statement: not retried.
    assert_eq!(stage.attempts, 1);
    let error = stage.error.as_deref().unwrap();
    assert!(error.starts_with("export sf (snowflake): "), "{error}");
    assert!(error.contains("staging.deals"), "{error}");
    assert!(
        error.contains("Stage 'ANALYTICS.REVLAKE.REVLAKE_STAGE' does not exist"),
        "{error}"
    );
    // The MERGE never ran: the target is untouched.
    assert!(
        !statements(&server)
            .await
            .iter()
            .any(|s| s.starts_with("MERGE"))
    );

    let recorded = history(&lake, &HistoryQuery::default()).await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, RunStatus::Failed);
    assert!(
        recorded[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("stage exports: export sf (snowflake): "),
        "{:?}",
        recorded[0].error
    );
    // The failure alert went to the job's channel.
    assert_eq!(finished.alerts, 1);
    let hooks: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/hooks/revlake")
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert!(
        hooks[0].contains("job load failed for demo in stage exports"),
        "{}",
        hooks[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_runs_a_one_second_job_without_overlap_until_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let root = bare_project(
        dir.path(),
        &[(
            "tick",
            "schedule = \"* * * * * *\"\ntimeout = \"30s\"\n[stages.alerts]\n[stages.exports]\n",
        )],
    );
    let project = Arc::new(Project::load(&root).unwrap());
    let lake = Lake::open(&dir.path().join("lake").display().to_string())
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(scheduler::run(
        project.clone(),
        lake.clone(),
        SchedulerOptions::default(),
        metrics.clone(),
        rx,
    ));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    tx.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the scheduler stops on its shutdown signal")
        .unwrap()
        .unwrap();
    assert!(summary.runs.len() >= 2, "{summary:#?}");
    assert!(
        summary
            .runs
            .iter()
            .all(|r| r.trigger == Trigger::Schedule && r.status == RunStatus::Succeeded)
    );
    let mut recorded = history(
        &lake,
        &HistoryQuery {
            job: Some("tick".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(recorded.len(), summary.runs.len());
    recorded.sort_by_key(|r| r.started_at);
    for pair in recorded.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].ended_at,
            "overlapping runs: {pair:#?}"
        );
        assert!(pair[1].scheduled_for > pair[0].scheduled_for);
    }
    let text = metrics.render(Utc::now());
    assert!(
        text.contains(&format!(
            "revlake_job_runs_total{{job=\"tick\",workspace=\"demo\",status=\"succeeded\"}} {}",
            summary.runs.len()
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_refused_on_every_tick_records_the_refusal_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = bare_project(
        dir.path(),
        &[(
            "tick",
            "schedule = \"* * * * * *\"\ntimeout = \"30s\"\n[stages.alerts]\n",
        )],
    );
    let project = Arc::new(Project::load(&root).unwrap());
    let lake = Lake::open(&dir.path().join("lake").display().to_string())
        .await
        .unwrap();
    // Another process holds the lease for the whole test.
    let leases = Leases::for_lake(&lake).unwrap();
    let held = leases
        .acquire(
            "tick",
            &demo(),
            "other-host:1:x",
            Duration::from_secs(600),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(matches!(held, Acquired::Held(_)));
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(scheduler::run(
        project.clone(),
        lake.clone(),
        SchedulerOptions::default(),
        metrics.clone(),
        rx,
    ));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    tx.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the scheduler stops on its shutdown signal")
        .unwrap()
        .unwrap();
    assert!(summary.runs.is_empty(), "{summary:#?}");
    assert!(summary.lease_refused >= 2, "{summary:#?}");
    let recorded = history(&lake, &HistoryQuery::default()).await.unwrap();
    assert_eq!(recorded.len(), 1, "one row for the streak: {recorded:#?}");
    assert_eq!(recorded[0].status, RunStatus::Skipped);
    assert!(
        recorded[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("held by other-host:1:x")),
        "{:?}",
        recorded[0].error
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_endpoint_answers_with_prometheus_text() {
    let metrics = Arc::new(Metrics::default());
    metrics.overlap_skipped("hourly", "demo");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(listener, metrics, rx));
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains("# TYPE revlake_job_runs_total counter"),
        "{body}"
    );
    assert!(
        body.contains("revlake_job_overlaps_skipped_total{job=\"hourly\",workspace=\"demo\"} 1"),
        "{body}"
    );
    let missing = client
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn the_shipped_jobs_load_with_the_project() {
    let project = Project::load(&repo()).unwrap();
    for name in [
        "daily",
        "hourly_opportunities",
        "daily_accounts_contacts",
        "hourly_tickets",
        "daily_product_usage",
        "marketing_every_4h",
        "daily_risk_scores",
        "weekly_executive_report",
        "monthly_model_retraining",
    ] {
        let j = project
            .jobs
            .get(name)
            .unwrap_or_else(|| panic!("no job {name}"));
        assert!(j.schedule.is_some(), "{name}");
    }
    assert_eq!(
        project.jobs["daily"].stage_names(),
        [
            "sync",
            "models",
            "mining",
            "simulation",
            "scoring",
            "alerts",
            "report",
            "exports"
        ]
    );
}
