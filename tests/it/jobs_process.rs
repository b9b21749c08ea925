//! Jobs as processes: the real binary run as children. A second `run-job` of a slow job is
//! refused (and recorded) while the first holds the lease, and takes the lease once the killed
//! holder's lease expires; the scheduler on a one-second schedule never overlaps a job slower
//! than a second; SIGTERM mid-stage exits promptly, records the run as cancelled and leaves
//! every table at a committed version; `--log-format json` writes JSON lines with the job,
//! stage and model spans; `revlake demo` runs the whole batch and ends with its summary.
//!
//! The slow stage is a real configuration: a Singer connection whose tap (`sh`, below)
//! sleeps `REVLAKE_TEST_TAP_SLEEP` seconds before it emits its one record.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use revlake::jobs::RunStatus;
use revlake::jobs::runlog::{HistoryQuery, history};
use revlake::lake::Lake;
use revlake::sql::{SessionOptions, SqlSession};
use serde_json::Value;

const TAP: &str = r#"sleep "${REVLAKE_TEST_TAP_SLEEP:-0}"
echo '{"type":"SCHEMA","stream":"ticks","schema":{"type":"object","properties":{"id":{"type":"integer"},"at":{"type":"string"}}},"key_properties":["id"]}'
echo '{"type":"RECORD","stream":"ticks","record":{"id":1,"at":"2025-01-01T00:00:00Z"}}'
echo '{"type":"STATE","value":{"ticks":1}}'
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A project in `<dir>/project`: the pipeline writes `<dir>/lake` for workspace `demo` and
/// has the slow Singer connection `slow`; `jobs` are written to jobs/. With `full`, the
/// repository's schemas, transforms and seeds are copied in (for landing and models).
fn project(dir: &Path, full: bool, jobs: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("project");
    for d in ["pipelines", "jobs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    if full {
        for d in ["schemas", "transforms", "datasets/seeds"] {
            copy_dir(&repo().join(d), &root.join(d));
        }
    }
    let tap = dir.join("tap.sh");
    std::fs::write(&tap, TAP).unwrap();
    std::fs::write(
        root.join("pipelines/default.toml"),
        format!(
            "lake = {:?}\nworkspace = \"demo\"\n[connections.slow]\nsource = \"singer\"\ncommand = [\"sh\", {:?}]\n",
            dir.join("lake").display().to_string(),
            tap.display().to_string()
        ),
    )
    .unwrap();
    for (name, text) in jobs {
        std::fs::write(root.join(format!("jobs/{name}.toml")), text).unwrap();
    }
    root
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `revlake --project root ARGS` with the tap sleeping `sleep` seconds.
fn revlake(root: &Path, sleep: u64, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revlake"));
    c.arg("--project")
        .arg(root)
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .env_remove("REVLAKE_LOG")
        .env_remove("REVLAKE_LOG_FORMAT")
        .env("REVLAKE_TEST_TAP_SLEEP", sleep.to_string())
        .stdin(Stdio::null());
    c
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `ready` holds, checking every 50 ms, for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` to exit, for at most `limit` (then kills it and fails).
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
}

async fn open_lake(dir: &Path) -> Lake {
    Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap()
}

async fn runs_of(lake: &Lake, job: &str) -> Vec<revlake::jobs::JobRun> {
    let mut runs = history(
        lake,
        &HistoryQuery {
            job: Some(job.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    runs.sort_by_key(|r| r.started_at);
    runs
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_is_refused_while_a_slow_run_holds_the_lease_and_takes_it_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(
        dir.path(),
        false,
        &[(
            "slow",
            "timeout = \"15s\"\nlease_margin = \"0s\"\n[retries]\nattempts = 1\n[stages.sync]\n",
        )],
    );
    let leases = dir.path().join("lake/_revlake/leases/slow/demo");
    let mut holder = revlake(&root, 60, &["run-job", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(60), "the holder's lease", || {
        std::fs::read_dir(&leases).is_ok_and(|mut d| d.next().is_some())
    });

    // While the holder runs (its tap sleeps a minute), a second process is refused.
    let second = revlake(&root, 0, &["run-job", "slow"]).output().unwrap();
    let (out, err) = text(&second);
    assert_eq!(second.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("slow for demo is running elsewhere"), "{err}");
    // Logs default to JSON lines when stderr is not a terminal (here, a pipe).
    assert!(
        err.lines().any(|l| l.starts_with('{')
            && serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["fields"]["message"] == "lease held elsewhere: not run")),
        "{err}"
    );
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder is still running"
    );
    let until = err
        .split("lease until ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no lease expiry in: {err}"))
        .with_timezone(&Utc);

    // Killed, the holder cannot release its lease: it is still refused until it expires.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let third = revlake(&root, 0, &["run-job", "slow"]).output().unwrap();
    if Utc::now() < until {
        assert_eq!(third.status.code(), Some(1), "{:?}", text(&third));
        assert!(text(&third).1.contains("running elsewhere"));
    }
    let wait = (until - Utc::now()).to_std().unwrap_or_default();
    std::thread::sleep(wait + Duration::from_millis(200));
    let fourth = revlake(&root, 0, &["run-job", "slow"]).output().unwrap();
    let (out, err) = text(&fourth);
    assert_eq!(fourth.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("slow manual for demo: succeeded"), "{out}");

    // The refusals are recorded as skipped, naming the holder; the killed run is not recorded.
    let lake = open_lake(dir.path()).await;
    let runs = runs_of(&lake, "slow").await;
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(statuses.last(), Some(&RunStatus::Succeeded), "{runs:#?}");
    let skipped: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Skipped)
        .collect();
    assert!(!skipped.is_empty(), "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| matches!(r.status, RunStatus::Skipped | RunStatus::Succeeded)),
        "{runs:#?}"
    );
    for r in &skipped {
        assert!(r.stages.is_empty());
        assert!(
            r.error
                .as_deref()
                .unwrap()
                .contains(&format!(":{}:", holder.id())),
            "{:?}",
            r.error
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_never_overlaps_a_job_slower_than_its_one_second_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(
        dir.path(),
        false,
        &[(
            "tick",
            "schedule = \"* * * * * *\"\ntimeout = \"30s\"\n[retries]\nattempts = 1\n[stages.sync]\n",
        )],
    );
    let out = revlake(&root, 2, &["schedule", "--run-for", "7s"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let stopped = stderr
        .lines()
        .find(|l| l.starts_with("scheduler stopped: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let skipped: u64 = stopped
        .split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stopped}"));
    assert!(skipped > 0, "ticks came while a run was going: {stopped}");

    let lake = open_lake(dir.path()).await;
    let runs = runs_of(&lake, "tick").await;
    assert!(runs.len() >= 2, "{runs:#?}");
    for r in &runs {
        assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
        // The job is slower than its schedule: each run spans several ticks.
        assert!(r.seconds() >= 1.5, "{r:#?}");
    }
    for pair in runs.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].ended_at,
            "overlapping runs: {pair:#?}"
        );
        assert!(pair[1].scheduled_for > pair[0].scheduled_for);
    }
}

/// Lines of stderr read as JSON objects; `until` is called on each and may act (send a
/// signal) when it sees the line it waits for.
fn json_lines(child: &mut Child, mut on_line: impl FnMut(&Value)) -> Vec<Value> {
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        on_line(&v);
        lines.push(v);
    }
    lines
}

fn span_names(line: &Value) -> Vec<String> {
    line["spans"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn is_stage_end(line: &Value, stage: &str) -> bool {
    line["fields"]["message"] == "stage ended" && line["fields"]["stage"] == stage
}

/// Every dataset of the lake loads and reads whole, at a committed version.
async fn every_table_reads(lake: &Lake) -> Vec<String> {
    let session = SqlSession::open(lake, &SessionOptions::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    for dataset in lake.datasets().await.unwrap() {
        let table = lake.load(&dataset, None).await.unwrap();
        let version = table.version().expect("a committed version");
        let batches = session
            .query(&format!("SELECT count(*) FROM {dataset}"))
            .await
            .unwrap_or_else(|e| panic!("{dataset}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{dataset} at version {version}: {e}"));
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        seen.push(dataset.to_string());
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_stage_exits_promptly_records_the_run_and_leaves_every_table_committed() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    let config = revlake::generate::GenerateConfig {
        deals: 300,
        seed: 11,
        ..revlake::generate::GenerateConfig::default()
    };
    revlake::generate::generate(&config, &exports, &mut |_| {}).unwrap();
    let root = project(
        dir.path(),
        true,
        &[(
            "batch",
            &format!(
                "[retries]\nattempts = 1\n[stages.sync]\n[stages.land]\ndir = {:?}\n[stages.models]\n",
                exports.display().to_string()
            ),
        )],
    );

    // 1. A whole run with JSON logs: every line is JSON with level, target and fields, and the
    //    job, stage and model spans are there.
    let mut run = revlake(&root, 0, &["--log-format", "json", "run-job", "batch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = json_lines(&mut run, |_| {});
    let status = run.wait().unwrap();
    assert!(status.success(), "{status:?}: {lines:#?}");
    for l in &lines {
        assert!(
            l["level"].is_string() && l["target"].is_string() && l["fields"].is_object(),
            "{l}"
        );
    }
    let model_line = lines
        .iter()
        .find(|l| span_names(l).contains(&"model".to_string()))
        .expect("a line in a model span");
    assert_eq!(span_names(model_line)[..2], ["job", "stage"]);
    assert_eq!(model_line["span"]["name"], "model");
    assert!(model_line["span"]["model"].is_string(), "{model_line}");
    let land_end = lines
        .iter()
        .find(|l| is_stage_end(l, "land"))
        .expect("the land stage's end");
    assert_eq!(land_end["spans"][0]["job"], "batch");
    assert_eq!(land_end["spans"][0]["workspace"], "demo");
    assert!(land_end["fields"]["rows"].as_u64().unwrap() > 300);

    // 2. SIGTERM while the models are being rebuilt.
    let mut run = revlake(&root, 0, &["--log-format", "json", "run-job", "batch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut signalled = None;
    let pid = run.id();
    let lines = json_lines(&mut run, |l| {
        if signalled.is_none() && is_stage_end(l, "land") {
            sigterm(pid);
            signalled = Some(Instant::now());
        }
    });
    let status = wait_exit(&mut run, Duration::from_secs(60));
    assert!(signalled.is_some(), "{lines:#?}");
    assert_eq!(status.code(), Some(1), "{lines:#?}");
    let lake = open_lake(dir.path()).await;
    let runs = runs_of(&lake, "batch").await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let cancelled = &runs[1];
    assert_eq!(cancelled.status, RunStatus::Cancelled, "{cancelled:#?}");
    let stages: Vec<(&str, RunStatus)> = cancelled
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.status))
        .collect();
    assert_eq!(
        stages,
        [
            ("sync", RunStatus::Succeeded),
            ("land", RunStatus::Succeeded),
            ("models", RunStatus::Cancelled)
        ]
    );
    assert!(
        cancelled
            .error
            .as_deref()
            .unwrap()
            .starts_with("stage models: interrupted"),
        "{cancelled:#?}"
    );
    let tables = every_table_reads(&lake).await;
    for t in ["raw.slow_ticks", "staging.deals", "ops.job_runs"] {
        assert!(tables.iter().any(|x| x == t), "{t} not in {tables:?}");
    }

    // 3. SIGTERM while the tap sleeps for two minutes: the process does not wait for it.
    let mut run = revlake(&root, 120, &["--log-format", "json", "run-job", "batch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut signalled = None;
    let pid = run.id();
    let lines = json_lines(&mut run, |l| {
        if signalled.is_none() && l["fields"]["message"] == "tap started" {
            std::thread::sleep(Duration::from_millis(300));
            sigterm(pid);
            signalled = Some(Instant::now());
        }
    });
    let status = wait_exit(&mut run, Duration::from_secs(30));
    let signalled = signalled.unwrap_or_else(|| panic!("no tap started: {lines:#?}"));
    assert_eq!(status.code(), Some(1));
    // Well before the tap would have finished.
    assert!(signalled.elapsed() < Duration::from_secs(60));
    let runs = runs_of(&lake, "batch").await;
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert_eq!(runs[2].status, RunStatus::Cancelled, "{:#?}", runs[2]);
    assert_eq!(runs[2].stages[0].status, RunStatus::Cancelled);
    assert!(runs[2].stages[1..].iter().all(|s| s.status == RunStatus::Skipped
        && s.note == "not run: the run was interrupted"));
    every_table_reads(&lake).await;
}

#[test]
fn demo_runs_the_whole_batch_and_ends_with_a_one_screen_summary() {
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path(), true, &[]);
    copy_dir(&repo().join("jobs"), &root.join("jobs"));
    // The demo lands files instead of syncing: the slow connection is never started.
    std::fs::write(
        root.join("pipelines/default.toml"),
        "workspace = \"demo\"\n",
    )
    .unwrap();
    // A check that fails (amounts above 1 USD), low enough not to block anything.
    let deals = root.join("schemas/staging.deals.toml");
    let mut schema = std::fs::read_to_string(&deals).unwrap();
    schema.push_str(
        "\n[[checks]]\ncheck = \"range\"\ncolumn = \"amount_usd\"\nmax = 1\nseverity = \"low\"\n",
    );
    std::fs::write(&deals, schema).unwrap();
    let lake = dir.path().join("lake");
    let out = revlake(
        &root,
        0,
        &[
            "--lake",
            lake.to_str().unwrap(),
            "demo",
            "--deals",
            "300",
            "--seed",
            "3",
        ],
    )
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("1. generated 13 export files"), "{stdout}");
    assert!(
        stdout.contains(
            "2. running the daily job over them: land → models → mining → simulation → scoring → alerts → report → exports"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("| source"), "{stdout}");
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("── daily for demo: succeeded in "))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        !summary.is_empty() && summary.len() <= 24,
        "one screen: {summary:#?}"
    );
    let line = |key: &str| -> &str {
        summary
            .iter()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` line in {summary:#?}"))
    };
    let rows = line("rows ");
    for stage in ["land ", "models ", "mining ", "simulation ", "scoring "] {
        assert!(rows.contains(stage), "{rows}");
    }
    assert!(rows.contains("exports (skipped)"), "{rows}");
    assert!(
        line("checks ").ends_with(" evaluated, 1 did not pass"),
        "{summary:#?}"
    );
    let failed = summary
        .iter()
        .find(|l| l.trim_start().starts_with("staging.deals."))
        .unwrap_or_else(|| panic!("the failed check is named: {summary:#?}"));
    assert!(failed.contains("[low]"), "{failed}");
    let forecast = line("forecast ");
    assert!(
        forecast.contains("expected bookings $")
            && forecast.contains("(P10 $")
            && forecast.contains(" – P90 $"),
        "{forecast}"
    );
    assert!(line("alerts ").ends_with(" raised"));
    let quality = root.join("datasets/reports/quality-demo.html");
    let digest = root.join("datasets/reports/digest-demo.html");
    assert_eq!(
        line("reports "),
        format!("reports    {}", quality.display())
    );
    assert!(summary.contains(&format!("           {}", digest.display()).as_str()));
    assert!(quality.is_file() && digest.is_file());
    assert!(
        line("exports ").contains("no exports configured"),
        "{summary:#?}"
    );
}
