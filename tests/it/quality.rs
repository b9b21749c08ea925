//! The quality stage on hand-made data: every check kind passes in one workspace and fails with
//! an exact failing count in another; results land in `ops.quality_results`; a critical failure
//! blocks only the models downstream of its dataset; the reports render (the HTML one in
//! headless Chromium when it is installed; under CI it must be).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use revlake::lake::{Lake, WorkspaceId, WriteMode};
use revlake::project::Project;
use revlake::quality::report::{self, ReportFormat};
use revlake::quality::{CheckOptions, CheckResult, QualityGate, Status, run_checks};
use revlake::sql::models::{DatasetGate, ModelDag, RunOptions, run_selected};
use revlake::sql::{SessionOptions, SqlError, SqlSession};

use crate::common::{memory_lake, query};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Writes the rows of `select` (a query over nothing but literals) as `dataset`, replacing it.
async fn put(lake: &Lake, dataset: &str, select: &str) {
    let session = SqlSession::open(lake, &SessionOptions::default())
        .await
        .unwrap();
    let stream = session
        .query(select)
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    lake.write(dataset.parse().unwrap())
        .with_mode(WriteMode::Overwrite)
        .with_stream(stream)
        .await
        .unwrap();
}

const DEALS: &str = r#"
primary_key = ["workspace_id", "id"]

[[columns]]
name = "workspace_id"
type = "string"
nullable = false

[[columns]]
name = "id"
type = "string"
checks = [{ check = "unique", severity = "critical" }]

[[columns]]
name = "account_id"
type = "string"
checks = [
  { check = "not_null" },
  { check = "relationships", to = "staging.accounts" },
]

[[columns]]
name = "stage"
type = "string"
checks = [{ check = "accepted_values", values = ["lead", "proposal", "closed_won", "closed_lost"] }]

[[columns]]
name = "stage_raw"
type = "string"

[[columns]]
name = "amount"
type = "float64"
checks = [{ check = "range", min = 0, max = 1000000 }]

[[columns]]
name = "email"
type = "string"
checks = [
  { check = "regex", pattern = '^[^@\s]+@[^@\s]+$' },
  { check = "null_rate_max", max_rate = 0.25 },
]

[[columns]]
name = "created_at"
type = "timestamp"
checks = [{ check = "freshness", max_age = "30d" }]

[[columns]]
name = "closed_at"
type = "timestamp"

[[checks]]
check = "not_empty"
min_rows = 2

[[checks]]
check = "unmapped_stages"

[[checks]]
check = "expression"
name = "closed_after_created"
expression = "closed_at IS NULL OR closed_at >= created_at"

[[checks]]
check = "custom_sql"
name = "won_deals_have_amounts"
sql = "SELECT id, workspace_id FROM staging.deals WHERE stage = 'closed_won' AND amount IS NULL"

[[checks]]
check = "row_count_change_max"
max_drop = 0.2
"#;

const ACCOUNTS: &str = r#"
[[columns]]
name = "workspace_id"
type = "string"
nullable = false
[[columns]]
name = "id"
type = "string"
"#;

/// A deal row: `(ws, id, account, stage, stage_raw, amount, email, created days ago, closed
/// days after creation)`.
type Deal = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    Option<f64>,
    Option<&'static str>,
    i64,
    Option<i64>,
);

fn deals_sql(rows: &[Deal]) -> String {
    let text =
        |v: Option<&str>| v.map_or("CAST(NULL AS VARCHAR)".to_string(), |s| format!("'{s}'"));
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "({}, {}, {}, {}, {}, {}, {}, now() - INTERVAL '{} days', {})",
                text(Some(r.0)),
                text(Some(r.1)),
                text(r.2),
                text(r.3),
                text(Some(r.4)),
                r.5.map_or("CAST(NULL AS DOUBLE)".to_string(), |a| format!(
                    "CAST({a} AS DOUBLE)"
                )),
                text(r.6),
                r.7,
                r.8.map_or("CAST(NULL AS TIMESTAMP)".to_string(), |d| {
                    format!("now() - INTERVAL '{} days' + INTERVAL '{d} days'", r.7)
                }),
            )
        })
        .collect();
    format!(
        "SELECT column1 AS workspace_id, column2 AS id, column3 AS account_id, column4 AS stage, \
         column5 AS stage_raw, column6 AS amount, column7 AS email, \
         arrow_cast(column8, 'Timestamp(Microsecond, Some(\"UTC\"))') AS created_at, \
         arrow_cast(column9, 'Timestamp(Microsecond, Some(\"UTC\"))') AS closed_at FROM (VALUES {})",
        values.join(", ")
    )
}

fn good_rows() -> Vec<Deal> {
    let mut rows = Vec::new();
    let ids = ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9", "g10"];
    for (i, id) in ids.into_iter().enumerate() {
        rows.push((
            "good",
            id,
            Some(if i % 2 == 0 { "a1" } else { "a2" }),
            Some(if i < 5 { "proposal" } else { "closed_won" }),
            "Proposal",
            Some(1000.0 * (i + 1) as f64),
            // One null email of ten: 10 % <= 25 %.
            if i == 0 { None } else { Some("rep@acme.com") },
            2,
            if i >= 5 { Some(1) } else { None },
        ));
    }
    rows
}

/// Ten rows whose defects are counted in the test.
fn bad_rows() -> Vec<Deal> {
    vec![
        // not_null(account_id): b1, b2; null emails: b1, b2, b4 (30 % > 25 %).
        (
            "bad",
            "b1",
            None,
            Some("lead"),
            "Lead",
            Some(10.0),
            None,
            100,
            None,
        ),
        (
            "bad",
            "b2",
            None,
            Some("lead"),
            "Lead",
            Some(10.0),
            None,
            100,
            None,
        ),
        // closed before created: b3.
        (
            "bad",
            "b3",
            Some("a1"),
            Some("closed_lost"),
            "Lost",
            Some(10.0),
            Some("x@y.z"),
            100,
            Some(-3),
        ),
        // a stage outside the accepted values: b4.
        (
            "bad",
            "b4",
            Some("a1"),
            Some("won?"),
            "Won?",
            Some(10.0),
            None,
            100,
            None,
        ),
        // an unmapped raw stage: b5.
        (
            "bad",
            "b5",
            Some("a1"),
            None,
            "Weird",
            Some(10.0),
            Some("x@y.z"),
            100,
            None,
        ),
        // accounts that do not exist: b6, b7.
        (
            "bad",
            "b6",
            Some("a-missing"),
            Some("lead"),
            "Lead",
            Some(10.0),
            Some("x@y.z"),
            100,
            None,
        ),
        (
            "bad",
            "b7",
            Some("a-gone"),
            Some("lead"),
            "Lead",
            Some(10.0),
            Some("x@y.z"),
            100,
            None,
        ),
        // a negative amount: b8.
        (
            "bad",
            "b8",
            Some("a1"),
            Some("lead"),
            "Lead",
            Some(-5.0),
            Some("x@y.z"),
            100,
            None,
        ),
        // a duplicated id with a malformed email: two rows.
        (
            "bad",
            "b9",
            Some("a1"),
            Some("lead"),
            "Lead",
            Some(10.0),
            Some("not-an-email"),
            100,
            None,
        ),
        (
            "bad",
            "b9",
            Some("a1"),
            Some("lead"),
            "Lead",
            Some(10.0),
            Some("not-an-email"),
            100,
            None,
        ),
        // a won deal without an amount: b10 (eleventh row).
        (
            "bad",
            "b10",
            Some("a2"),
            Some("closed_won"),
            "Won",
            None,
            Some("x@y.z"),
            100,
            Some(5),
        ),
    ]
}

pub(crate) async fn project_and_lake() -> (tempfile::TempDir, Project, Lake) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "schemas/staging.deals.toml", DEALS);
    write(dir.path(), "schemas/staging.accounts.toml", ACCOUNTS);
    let project = Project::load(dir.path()).unwrap();
    let lake = memory_lake().await;
    put(
        &lake,
        "staging.accounts",
        "SELECT column1 AS workspace_id, column2 AS id FROM (VALUES ('good','a1'), ('good','a2'), ('bad','a1'), ('bad','a2'))",
    )
    .await;
    // Version 0: 10 good rows and 22 bad ones (the bad workspace then loses half).
    let mut first = good_rows();
    first.extend(bad_rows());
    first.extend(bad_rows());
    put(&lake, "staging.deals", &deals_sql(&first)).await;
    let mut rows = good_rows();
    rows.extend(bad_rows());
    put(&lake, "staging.deals", &deals_sql(&rows)).await;
    (dir, project, lake)
}

fn by_check<'a>(
    results: impl Iterator<Item = &'a CheckResult>,
    ws: &str,
) -> BTreeMap<String, CheckResult> {
    results
        .filter(|r| r.workspace_id == ws)
        .map(|r| (r.check.clone(), r.clone()))
        .collect()
}

#[tokio::test]
async fn every_kind_passes_on_clean_rows_and_counts_the_failing_ones() {
    let (_dir, project, lake) = project_and_lake().await;
    let run = run_checks(&lake, &project, &CheckOptions::default())
        .await
        .unwrap();
    let deals = run
        .reports
        .iter()
        .find(|r| r.dataset.to_string() == "staging.deals")
        .unwrap();
    // 1 aggregate scan for the 10 row-level checks, the sample query over the 7 failing ones
    // with per-row failures (counted as a scan each), and unique, relationships, custom_sql.
    assert_eq!(deals.scans, 1 + 7 + 3, "{} scans", deals.scans);

    let good = by_check(run.results(), "good");
    assert_eq!(good.len(), 13, "{:?}", good.keys());
    for (name, r) in &good {
        assert_eq!(r.status, Status::Pass, "{name}: {r:?}");
        assert_eq!(r.failing_rows, 0, "{name}");
    }
    assert_eq!(good["null_rate_max(email)"].observed, Some(0.1));

    let bad = by_check(run.results(), "bad");
    let expected: &[(&str, u64)] = &[
        ("not_null(account_id)", 2),
        ("unique(id)", 2),
        ("accepted_values(stage)", 1),
        ("relationships(account_id->staging.accounts)", 2),
        ("range(amount)", 1),
        ("regex(email)", 2),
        ("null_rate_max(email)", 3),
        ("freshness(created_at)", 11),
        ("unmapped_stages(stage)", 1),
        ("closed_after_created", 1),
        ("won_deals_have_amounts", 1),
        ("row_count_change_max", 11),
    ];
    for (name, failing) in expected {
        let r = &bad[*name];
        assert_eq!(r.status, Status::Fail, "{name}: {r:?}");
        assert_eq!(r.failing_rows, *failing, "{name}: {r:?}");
        // Created (version 0), then two writes.
        assert_eq!(r.version, 2, "{name}");
    }
    assert_eq!(bad["not_empty"].status, Status::Pass);
    assert_eq!(bad["unique(id)"].sample, ["b9"]);
    assert_eq!(
        bad["relationships(account_id->staging.accounts)"].sample,
        ["b6", "b7"]
    );
    assert_eq!(bad["not_null(account_id)"].sample, ["b1", "b2"]);
    assert_eq!(bad["row_count_change_max"].observed, Some(-0.5));
    assert!(
        bad["null_rate_max(email)"]
            .message
            .contains("3 of 11 rows are null")
    );
    assert!(bad["freshness(created_at)"].message.contains("limit 30d"));

    // One commit of every result, per workspace.
    let recorded = query(
        &lake,
        &format!(
            "SELECT workspace_id, count(*), sum(failing_rows) FROM ops.quality_results WHERE run_id = '{}' GROUP BY workspace_id",
            run.run_id
        ),
    )
    .await;
    let bad_total: u64 = expected.iter().map(|e| e.1).sum();
    assert_eq!(
        recorded,
        [format!("bad,13,{bad_total}"), "good,13,0".to_string()]
    );
}

#[tokio::test]
async fn a_workspace_without_rows_fails_not_empty_and_selections_are_checked() {
    let (_dir, project, lake) = project_and_lake().await;
    let run = run_checks(
        &lake,
        &project,
        &CheckOptions {
            workspace: Some(WorkspaceId::new("gone").unwrap()),
            select: vec!["deals".into()],
        },
    )
    .await
    .unwrap();
    let gone = by_check(run.results(), "gone");
    assert_eq!(gone["not_empty"].status, Status::Fail);
    assert_eq!(gone["not_empty"].message, "0 rows, fewer than 2");
    assert!(run.failed_at(revlake::quality::Severity::Critical));

    let e = run_checks(
        &lake,
        &project,
        &CheckOptions {
            workspace: None,
            select: vec!["staging.nope".into()],
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("staging.nope") && e.contains("staging.deals"),
        "{e}"
    );
}

#[tokio::test]
async fn a_check_that_cannot_run_is_an_error_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "schemas/staging.accounts.toml",
        &format!(
            "{ACCOUNTS}\n[[checks]]\ncheck = \"expression\"\nname = \"bad_sql\"\nexpression = \"no_such_column > 1\"\n\n[[checks]]\ncheck = \"not_null\"\ncolumn = \"id\"\n"
        ),
    );
    let project = Project::load(dir.path()).unwrap();
    let lake = memory_lake().await;
    put(
        &lake,
        "staging.accounts",
        "SELECT column1 AS workspace_id, column2 AS id FROM (VALUES ('w','a1'), ('w', CAST(NULL AS VARCHAR)))",
    )
    .await;
    let run = run_checks(&lake, &project, &CheckOptions::default())
        .await
        .unwrap();
    let r = by_check(run.results(), "w");
    assert_eq!(r["bad_sql"].status, Status::Error);
    assert!(
        r["bad_sql"].message.contains("no_such_column"),
        "{:?}",
        r["bad_sql"]
    );
    assert_eq!(r["not_null(id)"].status, Status::Fail);
    assert_eq!(r["not_null(id)"].failing_rows, 1);
}

#[tokio::test]
async fn row_count_changes_compare_with_the_version_last_passed() {
    let (_dir, project, lake) = project_and_lake().await;
    let select = CheckOptions {
        workspace: Some(WorkspaceId::new("good").unwrap()),
        select: vec!["staging.deals".into()],
    };
    let first = run_checks(&lake, &project, &select).await.unwrap();
    let r = by_check(first.results(), "good");
    assert_eq!(r["row_count_change_max"].status, Status::Pass);
    // Versions 3 and 4 drop 1 row each: 10 -> 9 (10 %, passes, the baseline moves) -> 8.
    let mut rows = good_rows();
    rows.pop();
    put(&lake, "staging.deals", &deals_sql(&rows)).await;
    run_checks(&lake, &project, &select).await.unwrap();
    rows.pop();
    put(&lake, "staging.deals", &deals_sql(&rows)).await;
    let third = run_checks(&lake, &project, &select).await.unwrap();
    let r = &by_check(third.results(), "good")["row_count_change_max"];
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert!(r.message.contains("9 rows at version 3"), "{r:?}");
    // Three rows fewer at once: 8 -> 5 is a 37.5 % drop against version 4.
    rows.truncate(5);
    put(&lake, "staging.deals", &deals_sql(&rows)).await;
    let fourth = run_checks(&lake, &project, &select).await.unwrap();
    let r = &by_check(fourth.results(), "good")["row_count_change_max"];
    assert_eq!((r.status, r.failing_rows), (Status::Fail, 3), "{r:?}");
    assert!(r.message.contains("version 4"), "{r:?}");
}

const PLAIN: &str = r#"
[[columns]]
name = "workspace_id"
type = "string"
nullable = false
[[columns]]
name = "id"
type = "string"
"#;

#[tokio::test]
async fn a_critical_failure_blocks_only_the_models_downstream() {
    let dir = tempfile::tempdir().unwrap();
    // raw.src -> staging.a (critical unique fails) -> staging.b ; raw.src -> staging.c
    write(
        dir.path(),
        "schemas/staging.a.toml",
        &format!(
            "{PLAIN}\n[[checks]]\ncheck = \"unique\"\ncolumn = \"id\"\nseverity = \"critical\"\n"
        ),
    );
    write(dir.path(), "schemas/staging.b.toml", PLAIN);
    write(
        dir.path(),
        "schemas/staging.c.toml",
        &format!(
            "{PLAIN}\n[[checks]]\ncheck = \"not_null\"\ncolumn = \"id\"\nseverity = \"high\"\n"
        ),
    );
    write(
        dir.path(),
        "transforms/staging/a.sql",
        "SELECT workspace_id, id FROM raw.src",
    );
    write(
        dir.path(),
        "transforms/staging/b.sql",
        "SELECT workspace_id, id FROM staging.a",
    );
    write(
        dir.path(),
        "transforms/staging/c.sql",
        "SELECT workspace_id, CAST(NULL AS VARCHAR) AS id FROM raw.src",
    );
    let project = Project::load(dir.path()).unwrap();
    let lake = memory_lake().await;
    put(
        &lake,
        "raw.src",
        "SELECT column1 AS workspace_id, column2 AS id FROM (VALUES ('w','1'), ('w','1'), ('w','2'))",
    )
    .await;
    let dag = ModelDag::load(&project).unwrap();
    let gate = Arc::new(QualityGate::new(&lake, &project, None).await.unwrap());
    let options = RunOptions {
        concurrency: 1,
        gate: Some(gate.clone() as Arc<dyn DatasetGate>),
        ..RunOptions::default()
    };
    let mut built = Vec::new();
    let e = run_selected(&lake, &project, &dag, &options, &mut |r| {
        built.push(r.dataset.to_string())
    })
    .await
    .unwrap_err();
    built.sort();
    // a is written (then blocked), c runs (its high failure warns), b never runs.
    assert_eq!(built, ["staging.a", "staging.c"]);
    match &e {
        SqlError::ModelsFailed {
            failed,
            blocked,
            skipped,
        } => {
            assert!(failed.is_empty(), "{failed:?}");
            assert_eq!(blocked.len(), 1);
            assert_eq!(blocked[0].0, "staging.a");
            assert!(blocked[0].1.contains("unique(id)"), "{blocked:?}");
            assert_eq!(skipped, &["staging.b".to_string()]);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("failed critical checks"), "{e}");
    let checked = gate.finish().await.unwrap();
    let statuses: Vec<String> = checked
        .results()
        .map(|r| format!("{} {} {}", r.dataset, r.check, r.status))
        .collect();
    assert_eq!(
        statuses,
        ["staging.a unique(id) fail", "staging.c not_null(id) fail"],
        "{statuses:?}"
    );
    assert_eq!(
        query(&lake, "SELECT count(*) FROM ops.quality_results").await,
        ["2"]
    );

    // A critical check on the raw input blocks every model reading it, before they run.
    write(
        dir.path(),
        "schemas/raw.src.toml",
        &format!(
            "{PLAIN}\n[[checks]]\ncheck = \"unique\"\ncolumn = \"id\"\nseverity = \"critical\"\n"
        ),
    );
    let project = Project::load(dir.path()).unwrap();
    let gate = Arc::new(QualityGate::new(&lake, &project, None).await.unwrap());
    let options = RunOptions {
        gate: Some(gate.clone() as Arc<dyn DatasetGate>),
        ..RunOptions::default()
    };
    let mut built = Vec::new();
    let e = run_selected(&lake, &project, &dag, &options, &mut |r| {
        built.push(r.dataset.to_string())
    })
    .await
    .unwrap_err();
    assert!(built.is_empty(), "{built:?}");
    let text = e.to_string();
    assert!(text.contains("raw.src: unique(id)"), "{text}");
    for m in ["staging.a", "staging.b", "staging.c"] {
        assert!(text.contains(m), "{m} not skipped: {text}");
    }
}

/// The HTML report in a real browser: headless Chromium renders it to a screenshot without
/// console errors, and its DOM holds the dataset tables. Skipped (loudly) without Chromium,
/// except under CI, where `.ci/run` installs it.
#[tokio::test]
async fn the_reports_render_and_the_html_one_in_headless_chromium() {
    let (_dir, project, lake) = project_and_lake().await;
    run_checks(&lake, &project, &CheckOptions::default())
        .await
        .unwrap();
    run_checks(&lake, &project, &CheckOptions::default())
        .await
        .unwrap();
    let built = report::build(&lake, None).await.unwrap();
    assert_eq!(built.runs, 2);
    assert_eq!(built.datasets.len(), 1, "only staging.deals has checks");
    let deals = &built
        .datasets
        .iter()
        .find(|d| d.dataset == "staging.deals")
        .unwrap();
    assert_eq!(deals.status, "fail");
    assert_eq!(deals.row_counts.len(), 2);
    let junit = report::render(&built, ReportFormat::Junit).unwrap();
    assert!(
        junit.contains(
            "<testsuite name=\"staging.deals\" tests=\"26\" failures=\"12\" errors=\"0\""
        ),
        "{junit}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&report::render(&built, ReportFormat::Json).unwrap()).unwrap();
    assert_eq!(json["failed"], 12);

    let html = report::render(&built, ReportFormat::Html).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("quality.html");
    std::fs::write(&page, &html).unwrap();
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        assert!(
            std::env::var("CI").is_err(),
            "headless Chromium is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: no chromium on PATH; the HTML report was not rendered in a browser");
        return;
    };
    let url = format!("file://{}", page.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let shot = dir.path().join("quality.png");
    let out = std::process::Command::new(chromium)
        .args(base)
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    for line in stderr.lines() {
        assert!(
            !(line.contains("CONSOLE") && (line.contains("error") || line.contains("Uncaught"))),
            "console error: {line}"
        );
    }
    let dom = std::process::Command::new(chromium)
        .args(base)
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile2").display()
        ))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in [
        "id=\"staging.deals\"",
        "id=\"summary\"",
        "class=\"checks\"",
        "<svg",
    ] {
        assert!(dom.contains(id), "{id} missing from the rendered DOM");
    }
}

#[tokio::test]
async fn a_stage_checks_only_what_it_wrote() {
    let (_dir, project, lake) = project_and_lake().await;
    let accounts: revlake::lake::DatasetRef = "staging.accounts".parse().unwrap();
    let deals: revlake::lake::DatasetRef = "staging.deals".parse().unwrap();
    // staging.accounts declares no checks: nothing runs, nothing is recorded.
    let none =
        revlake::quality::check_written(&lake, &project, std::slice::from_ref(&accounts), None)
            .await
            .unwrap();
    assert!(none.is_none());
    let run = revlake::quality::check_written(&lake, &project, &[accounts, deals], None)
        .await
        .unwrap()
        .unwrap();
    let datasets: Vec<String> = run.reports.iter().map(|r| r.dataset.to_string()).collect();
    assert_eq!(datasets, ["staging.deals"]);
    assert!(run.failed_at(revlake::quality::Severity::Critical));
}
