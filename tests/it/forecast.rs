//! Pipeline forecasts, recommendations and the calibration backtest: on a small hand-built lake
//! whose numbers are known, on a generated org, and through the `forecast` and `backtest`
//! commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Float64Builder, Int64Array, ListBuilder,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use chrono::{DateTime, Duration, Utc};
use revlake::lake::{DatasetRef, Lake, WorkspaceId};
use revlake::project::{DatasetSchema, Project};
use revlake::simulate::model::{CLOSED_LOST, CLOSED_WON};
use revlake::simulate::pipeline::{Dimension, ForecastInputs, PeriodKind, View, pipeline_forecast};
use revlake::simulate::recommend::recommend_workspace;
use revlake::simulate::{SimConfig, SimulateError};
use revlake::sql::{SessionOptions, SqlSession};

use crate::common::{self, memory_lake};

const T: &str = "2025-06-30T00:00:00Z";

fn at(days_before: i64) -> i64 {
    let t: DateTime<Utc> = T.parse().unwrap();
    (t - Duration::days(days_before)).timestamp_micros()
}

fn ts(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn strs(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn opt_strs(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn f64s(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

fn bools(values: &[bool]) -> ArrayRef {
    Arc::new(BooleanArray::from(values.to_vec()))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

async fn put(lake: &Lake, dataset: &str, b: RecordBatch) {
    let d: DatasetRef = dataset.parse().unwrap();
    lake.write(d)
        .with_batches(b.schema(), vec![b])
        .await
        .unwrap();
}

/// The mined chain of `acme`: demo → proposal → won, where a champion raises both advances.
async fn put_marts(lake: &Lake) {
    let (w, l) = (CLOSED_WON, CLOSED_LOST);
    let rows = [
        ("*", "demo", "proposal", 0.5),
        ("*", "demo", l, 0.5),
        ("*", "proposal", w, 0.6),
        ("*", "proposal", l, 0.4),
        ("champion=true", "demo", "proposal", 0.8),
        ("champion=true", "demo", l, 0.2),
        ("champion=true", "proposal", w, 0.8),
        ("champion=true", "proposal", l, 0.2),
        ("champion=false", "demo", "proposal", 0.4),
        ("champion=false", "demo", l, 0.6),
        ("champion=false", "proposal", w, 0.5),
        ("champion=false", "proposal", l, 0.5),
    ];
    let n = rows.len();
    put(
        lake,
        "marts.stage_transition_matrix",
        batch(vec![
            ("workspace_id", strs(&vec!["acme"; n])),
            (
                "context_key",
                strs(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            (
                "from_stage",
                strs(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            (
                "to_stage",
                strs(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            ("count", Arc::new(Int64Array::from(vec![10i64; n]))),
            (
                "probability",
                f64s(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ),
            ("low_confidence", bools(&vec![false; n])),
        ]),
    )
    .await;
    let mut q = ListBuilder::new(Float64Builder::new());
    for _ in 0..2 {
        q.values()
            .append_slice(&(0..21).map(|i| 5.0 + f64::from(i)).collect::<Vec<_>>());
        q.append(true);
    }
    put(
        lake,
        "marts.stage_durations",
        batch(vec![
            ("workspace_id", strs(&["acme", "acme"])),
            ("stage", strs(&["demo", "proposal"])),
            ("context_key", strs(&["*", "*"])),
            ("quantiles", Arc::new(q.finish())),
        ]),
    )
    .await;
}

/// Deals of `acme`: d1 (demo, rep r1, no champion), d2 (proposal, r1, champion), d3 (proposal,
/// r2), d4 won in June by r2, d5 lost.
async fn put_staging(lake: &Lake) {
    let ids = ["d1", "d2", "d3", "d4", "d5"];
    put(
        lake,
        "staging.deals",
        batch(vec![
            ("workspace_id", strs(&["acme"; 5])),
            ("id", strs(&ids)),
            ("source", strs(&["crm"; 5])),
            (
                "stage",
                strs(&["demo", "proposal", "proposal", CLOSED_WON, CLOSED_LOST]),
            ),
            (
                "amount",
                f64s(&[100_000.0, 50_000.0, 20_000.0, 7_000.0, 1.0]),
            ),
            (
                "amount_usd",
                f64s(&[100_000.0, 50_000.0, 20_000.0, 7_000.0, 1.0]),
            ),
            ("probability", f64s(&[0.3, 0.6, 0.6, 1.0, 0.0])),
            ("is_closed", bools(&[false, false, false, true, true])),
            ("is_won", bools(&[false, false, false, true, false])),
            (
                "closed_at",
                ts(vec![None, None, None, Some(at(20)), Some(at(40))]),
            ),
            ("created_at", ts(vec![Some(at(60)); 5])),
            ("updated_at", ts(vec![Some(at(0)); 5])),
            (
                "owner_id",
                opt_strs(&[Some("r1"), Some("r1"), Some("r2"), Some("r2"), None]),
            ),
            (
                "segment",
                opt_strs(&[Some("smb"), Some("enterprise"), None, Some("smb"), None]),
            ),
            ("lead_source", opt_strs(&[None; 5])),
            ("industry", opt_strs(&[None; 5])),
        ]),
    )
    .await;
    put(
        lake,
        "staging.deal_stage_history",
        batch(vec![
            ("workspace_id", strs(&["acme"; 5])),
            ("deal_id", strs(&["d1", "d2", "d3", "d4", "d5"])),
            (
                "from_stage",
                opt_strs(&[None, None, None, Some("proposal"), Some("demo")]),
            ),
            (
                "to_stage",
                strs(&["demo", "proposal", "proposal", CLOSED_WON, CLOSED_LOST]),
            ),
            (
                "transitioned_at",
                ts(vec![
                    Some(at(10)),
                    Some(at(3)),
                    Some(at(0)),
                    Some(at(20)),
                    Some(at(40)),
                ]),
            ),
        ]),
    )
    .await;
    put(
        lake,
        "staging.deal_contacts",
        batch(vec![
            ("workspace_id", strs(&["acme"; 2])),
            ("deal_id", strs(&["d1", "d2"])),
            ("role", strs(&["economic_buyer", "champion"])),
        ]),
    )
    .await;
}

/// Quotas: r1 has 100,000 for Q3 2025.
async fn put_quotas(lake: &Lake) {
    let day = |y, m, d| {
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    put(
        lake,
        "staging.quotas",
        batch(vec![
            ("workspace_id", strs(&["acme"])),
            ("id", strs(&["q1"])),
            ("owner_id", strs(&["r1"])),
            (
                "period_start",
                Arc::new(Date32Array::from(vec![day(2025, 7, 1)])),
            ),
            (
                "period_end",
                Arc::new(Date32Array::from(vec![day(2025, 9, 30)])),
            ),
            ("amount_usd", f64s(&[100_000.0])),
        ]),
    )
    .await;
}

fn acme() -> WorkspaceId {
    WorkspaceId::new("acme").unwrap()
}

fn config(runs: u32) -> SimConfig {
    SimConfig {
        runs,
        seed: 5,
        ..SimConfig::default()
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn pipeline_forecast_sums_runs_and_reads_quotas() {
    let lake = memory_lake().await;
    put_marts(&lake).await;
    put_staging(&lake).await;
    let inputs = ForecastInputs::load(&lake, &acme(), None).await.unwrap();
    assert!(inputs.quotas.is_empty(), "no staging.quotas yet");
    let f = pipeline_forecast(&inputs, 6, &config(4_000)).await.unwrap();
    let rows = &f.result.rows;
    assert!(
        rows.iter()
            .all(|r| r.quota.is_none() && r.p_quota.is_none())
    );
    for r in rows {
        let d = r.revenue;
        assert!(d.p10 <= d.p50 && d.p50 <= d.p90, "{r:?}");
        assert!(d.mean >= r.booked - 1e-9);
    }
    let find = |view: View, dim: Dimension, group: &str, period: &str| {
        rows.iter()
            .find(|r| {
                r.view == view && r.dimension == dim && r.group == group && r.period.label == period
            })
            .unwrap_or_else(|| panic!("{view:?} {dim:?} {group} {period}"))
    };
    // The reps' (and segments') means sum to the workspace's in every view and period.
    let periods: Vec<String> = rows
        .iter()
        .filter(|r| r.dimension == Dimension::Workspace && r.view == View::CurrentTrajectory)
        .map(|r| r.period.label.clone())
        .collect();
    assert!(periods.contains(&"2025-Q3".to_string()) && periods.contains(&"all".to_string()));
    for view in View::ALL {
        for p in &periods {
            let ws = find(view, Dimension::Workspace, "acme", p).revenue.mean;
            for dim in [Dimension::Rep, Dimension::Segment] {
                let sum: f64 = rows
                    .iter()
                    .filter(|r| r.view == view && r.dimension == dim && &r.period.label == p)
                    .map(|r| r.revenue.mean)
                    .sum();
                assert!(
                    (sum - ws).abs() < 1e-6 * ws.max(1.0),
                    "{view:?} {dim:?} {p}"
                );
            }
        }
    }
    // Exact expectations over the open pipeline: d1 0.4·0.5, d2 0.8, d3 0.6.
    let all = find(View::CurrentTrajectory, Dimension::Workspace, "acme", "all");
    let exact = 100_000.0 * 0.2 + 50_000.0 * 0.8 + 20_000.0 * 0.6;
    assert!((all.revenue.mean - exact).abs() < 0.03 * exact, "{all:?}");
    assert_eq!(all.open_deals, 3);
    // The best case gives d1 and d3 a champion; the worst takes d2's away.
    let best = find(View::BestCase, Dimension::Workspace, "acme", "all")
        .revenue
        .mean;
    let worst = find(View::WorstCase, Dimension::Workspace, "acme", "all")
        .revenue
        .mean;
    assert!(
        worst < all.revenue.mean && all.revenue.mean < best,
        "{worst} {best}"
    );
    // June (the as-of month) holds d4's 7,000 booked.
    let june = find(View::CurrentTrajectory, Dimension::Rep, "r2", "2025-06");
    assert_eq!(june.booked, 7_000.0);
    assert_eq!(june.period.kind, PeriodKind::Month);
    assert_eq!(f.result.workspace_runs.len(), 4_000);

    // With quotas: r1's P(reaching 100,000 in Q3) is the share of runs where d1 wins in Q3
    // (d2 alone is 50,000): at most P(d1 wins) = 0.2.
    put_quotas(&lake).await;
    let inputs = ForecastInputs::load(&lake, &acme(), None).await.unwrap();
    assert_eq!(inputs.quotas.len(), 1);
    let f = pipeline_forecast(&inputs, 6, &config(4_000)).await.unwrap();
    let r1 = f
        .result
        .rows
        .iter()
        .find(|r| {
            r.view == View::CurrentTrajectory
                && r.dimension == Dimension::Rep
                && r.group == "r1"
                && r.period.label == "2025-Q3"
        })
        .unwrap();
    assert_eq!(r1.quota, Some(100_000.0));
    let p = r1.p_quota.unwrap();
    assert!(p > 0.05 && p <= 0.23, "{p}");
    let ws_q3 = f
        .result
        .rows
        .iter()
        .find(|r| {
            r.view == View::CurrentTrajectory
                && r.dimension == Dimension::Workspace
                && r.period.label == "2025-Q3"
        })
        .unwrap();
    assert_eq!(ws_q3.quota, Some(100_000.0));

    let schema =
        DatasetSchema::from_file(&repo().join("schemas/marts.pipeline_forecast.toml")).unwrap();
    let written = f.write(&lake, Some(&schema)).await.unwrap();
    assert_eq!(written.rows as usize, f.result.rows.len());
    let session = SqlSession::open(&lake, &SessionOptions::default())
        .await
        .unwrap();
    let back = common::rows(
        &session,
        "SELECT view, group_key, period, quota FROM marts.pipeline_forecast \
         WHERE dimension = 'rep' AND quota IS NOT NULL",
    )
    .await;
    assert_eq!(
        back,
        [
            "best_case,r1,2025-Q3,100000.0",
            "current_trajectory,r1,2025-Q3,100000.0",
            "worst_case,r1,2025-Q3,100000.0"
        ]
    );
}

#[tokio::test]
async fn recommendations_raise_win_rates_where_champions_help() {
    let lake = memory_lake().await;
    put_marts(&lake).await;
    put_staging(&lake).await;
    let inputs = ForecastInputs::load(&lake, &acme(), None).await.unwrap();
    let recs = recommend_workspace(
        &acme(),
        inputs.model.clone(),
        inputs.deals.clone(),
        inputs.as_of,
        &config(2_000),
    )
    .await
    .unwrap();
    let d1: Vec<_> = recs
        .recommendations
        .iter()
        .filter(|r| r.deal_id == "d1")
        .collect();
    let champion = d1
        .iter()
        .find(|r| r.scenario.to_string() == "add_champion")
        .expect("d1 has no champion: the scenario applies");
    // 0.8·0.8 − 0.4·0.5 = 0.44.
    assert!(champion.delta.p_win.low > 0.35, "{:?}", champion.delta);
    assert!(champion.helps && champion.rank_value == 1);
    assert!(
        champion.text.starts_with("Identify a champion: +4"),
        "{}",
        champion.text
    );
    // d2 has a champion: no add_champion for it; nothing offers remove_blocker (no such factor).
    assert!(
        recs.recommendations
            .iter()
            .all(|r| !(r.deal_id == "d2" && r.scenario.to_string() == "add_champion"))
    );
    assert!(
        recs.recommendations
            .iter()
            .all(|r| r.scenario.to_string() != "remove_blocker")
    );
    let schema =
        DatasetSchema::from_file(&repo().join("schemas/marts.recommendations.toml")).unwrap();
    let written = recs.write(&lake, Some(&schema)).await.unwrap();
    assert_eq!(written.rows as usize, recs.recommendations.len());
}

#[tokio::test]
async fn unknown_workspaces_and_unmined_lakes_are_clear_errors() {
    let lake = memory_lake().await;
    put_staging(&lake).await;
    let err = ForecastInputs::load(&lake, &WorkspaceId::new("nope").unwrap(), None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, SimulateError::NoSuchWorkspace { .. }) && err.is_user_error(),
        "{err}"
    );
    assert!(err.to_string().contains("acme"), "{err}");
    let err = ForecastInputs::load(&lake, &acme(), None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, SimulateError::NoMinedModel { .. })
            && err.to_string().contains("revlake mine"),
        "{err}"
    );
}

/// A generated org, landed and modelled as `revlake demo` does.
async fn generated_org(dir: &Path, deals: u64) -> Lake {
    let project = Project::load(&repo()).unwrap();
    let lake = Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap();
    let exports = dir.join("exports");
    let config = revlake::generate::GenerateConfig {
        deals,
        seed: 11,
        ..revlake::generate::GenerateConfig::default()
    };
    revlake::generate::generate(&config, &exports, &mut |_| {}).unwrap();
    let demo = WorkspaceId::new("demo").unwrap();
    revlake::pipeline::land_exports(&lake, &exports, &demo, "sync-1", &mut |_| {})
        .await
        .unwrap();
    revlake::pipeline::transform(&lake, &project, Some(&demo), &mut |_| {})
        .await
        .unwrap();
    lake
}

fn revlake(lake: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(repo())
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_on_a_generated_org_beats_the_base_rate_and_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let _lake = generated_org(dir.path(), 1_500).await;
    let path = dir.path().join("lake");

    // Before mining: forecast names `revlake mine`.
    let (code, _, err) = revlake(&path, &["forecast", "--workspace", "demo", "--runs", "200"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("revlake mine"), "{err}");

    // The backtest mines its own model from the history before --as-of.
    let (code, out, err) = revlake(
        &path,
        &[
            "backtest",
            "--workspace",
            "demo",
            "--as-of",
            "2025-06-30",
            "--runs",
            "1000",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let brier = json["model"]["brier"].as_f64().unwrap();
    let base = json["baseline"]["brier"].as_f64().unwrap();
    let n = json["model"]["n"].as_u64().unwrap();
    assert!(n >= 30, "{json}");
    assert!(brier < base, "model Brier {brier} vs base rate {base}");
    let bins = json["reliability"].as_array().unwrap();
    assert_eq!(bins.len(), 10);
    let counted: u64 = bins.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, n);

    let (code, out, err) = revlake(
        &path,
        &[
            "backtest",
            "--workspace",
            "demo",
            "--as-of",
            "2025-06-30",
            "--runs",
            "300",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Brier") && out.contains("observed"), "{out}");

    // Error cases: a bad date, a date before any history, an unknown workspace.
    let (code, _, err) = revlake(
        &path,
        &["backtest", "--workspace", "demo", "--as-of", "yesterday"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("yesterday"), "{err}");
    let (code, _, err) = revlake(
        &path,
        &["backtest", "--workspace", "demo", "--as-of", "2001-01-01"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("nothing to backtest"), "{err}");
    let (code, _, err) = revlake(
        &path,
        &["backtest", "--workspace", "nope", "--as-of", "2025-06-30"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("`nope` has no deals"), "{err}");

    // Mined: the forecast prints, writes both marts and the SVG.
    let (code, _, err) = revlake(&path, &["mine", "--workspace", "demo"]);
    assert_eq!(code, Some(0), "{err}");
    let svg = dir.path().join("revenue.svg");
    let (code, out, err) = revlake(
        &path,
        &[
            "forecast",
            "--workspace",
            "demo",
            "--runs",
            "500",
            "--recommendation-runs",
            "300",
            "--svg",
            svg.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("current_trajectory") && out.contains("best_case") && out.contains("p90"),
        "{out}"
    );
    assert!(out.contains("top recommendations"), "{out}");
    assert!(
        err.contains("marts.pipeline_forecast") && err.contains("marts.recommendations"),
        "{err}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("p50"));

    // The generator's true effects (a champion lifts the win rate, a blocker sinks it) come
    // back as the sign of the scenarios' mean deltas over the org's open deals.
    let (code, out, err) = revlake(
        &path,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT scenario, count(*) AS n, avg(p_win_delta) AS mean_delta \
             FROM marts.recommendations WHERE workspace_id = 'demo' \
             AND scenario IN ('add_champion', 'remove_blocker') GROUP BY scenario ORDER BY scenario",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    for row in &rows {
        let (n, mean): (u64, f64) = (row[1].parse().unwrap(), row[2].parse().unwrap());
        assert!(n >= 5, "{out}");
        assert!(
            mean > 0.02,
            "{} should raise p_win on the generated org: {out}",
            row[0]
        );
    }
    let (code, out, err) = revlake(
        &path,
        &[
            "forecast",
            "--workspace",
            "demo",
            "--runs",
            "300",
            "--by",
            "rep",
            "--no-recommendations",
            "--no-write",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rep") && out.contains("P(quota)"), "{out}");
    let (code, _, err) = revlake(
        &path,
        &["forecast", "--workspace", "demo", "--as-of", "not-a-date"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("not-a-date"), "{err}");

    for command in ["forecast", "backtest"] {
        let help = Command::new(env!("CARGO_BIN_EXE_revlake"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("Examples:") && help.contains(&format!("revlake {command}")),
            "{help}"
        );
    }
}
