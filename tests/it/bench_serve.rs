//! `revlake bench serve` as a user runs it: a tiny generated org, a short load on loopback,
//! the JSON report (both phases measured, percentiles ordered, every acknowledged webhook event
//! journaled and processed), and the refusals of bad flags.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bench_serve(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(repo())
        .arg("-q")
        .args(["bench", "serve"])
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .env_remove("REVLAKE_BENCH_HUBSPOT_SECRET")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// Percentiles in order, all of them positive.
fn assert_ordered(what: &str, latency: &Value) {
    let (p50, p90, p99, max) = (
        f(&latency["p50_ms"]),
        f(&latency["p90_ms"]),
        f(&latency["p99_ms"]),
        f(&latency["max_ms"]),
    );
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{what}: {latency}"
    );
}

#[test]
fn measures_both_phases_and_loses_no_acknowledged_event() {
    let (code, stdout, stderr) = bench_serve(&[
        "--deals",
        "300",
        "--duration",
        "2s",
        "--concurrency",
        "2",
        "--simulations",
        "200",
        "--json",
    ]);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"));
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["failures"], Value::Array(Vec::new()));
    assert_eq!(report["workspace"], "demo");
    assert_eq!(report["rate_limit"]["lifted"], true);
    for phase in ["simulate", "webhooks"] {
        let p = &report[phase];
        assert!(p["requests"].as_u64().unwrap() > 0, "{phase}: {p}");
        // Every request answered 2xx: the rate limit is lifted and the requests are valid.
        assert_eq!(p["ok"], p["requests"], "{phase}: {p}");
        assert_eq!(p["non_2xx"], serde_json::json!({}), "{phase}: {p}");
        assert_eq!(p["no_answer"], 0, "{phase}: {p}");
        assert!(f(&p["requests_per_s"]) > 0.0, "{phase}: {p}");
        assert_eq!(p["latency"]["count"], p["ok"], "{phase}: {p}");
        assert_ordered(phase, &p["latency"]);
    }
    assert!(report["simulate"]["endpoint"] == "POST /api/simulate");
    assert!(report["webhooks"]["endpoint"] == "POST /api/webhooks/demo/hubspot");
    let e = &report["events"];
    let acknowledged = e["acknowledged"].as_u64().unwrap();
    assert!(acknowledged > 0, "{e}");
    // 1 to 10 events per request, every one acknowledged.
    let requests = report["webhooks"]["requests"].as_u64().unwrap();
    assert!(
        acknowledged >= requests && acknowledged <= 10 * requests,
        "{e}"
    );
    assert_eq!(e["sent"], acknowledged, "{e}");
    assert_eq!(e["journaled"], acknowledged, "{e}");
    assert_eq!(e["lost"], 0, "{e}");
    assert_eq!(e["failed"], 0, "{e}");
    assert_eq!(e["pending"], 0, "{e}");
    assert_eq!(e["unconfirmed"], 0, "{e}");
    assert_eq!(
        e["processed"].as_u64().unwrap() + e["skipped"].as_u64().unwrap(),
        acknowledged,
        "{e}"
    );
    assert_eq!(e["processing_latency"]["count"], acknowledged, "{e}");
    assert_ordered("receipt → processed", &e["processing_latency"]);
    assert!(f(&report["peak_rss_mb"]) > 0.0, "{report:#}");
}

#[test]
fn a_zero_duration_is_refused_before_anything_runs() {
    let (code, stdout, stderr) = bench_serve(&["--duration", "0s"]);
    assert_eq!(code, Some(2), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("--duration") && stderr.contains("positive duration"),
        "{stderr}"
    );
    let (code, _, stderr) = bench_serve(&["--duration", "soon"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is not a duration"), "{stderr}");
}

#[test]
fn a_bad_workspace_or_concurrency_is_refused() {
    let (code, stdout, stderr) = bench_serve(&["--workspace", "no such/workspace"]);
    assert_eq!(code, Some(2), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("--workspace no such/workspace"), "{stderr}");
    let (code, _, stderr) = bench_serve(&["--concurrency", "0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--concurrency"), "{stderr}");
}
