//! The scheduler's metrics in the Prometheus text format, served on a loopback (or any)
//! address: `revlake schedule --metrics-addr 127.0.0.1:9464`, then `GET /metrics`.
//!
//! Written by hand over a `TcpListener`: one endpoint, a few counters, no HTTP stack needed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::runlog::{JobRun, RunStatus};

type Key = (String, String);

#[derive(Debug, Default)]
struct Inner {
    runs: BTreeMap<(String, String, String), u64>,
    seconds: BTreeMap<Key, (f64, u64)>,
    rows: BTreeMap<(String, String, String), u64>,
    failures: BTreeMap<Key, u64>,
    last_success: BTreeMap<Key, DateTime<Utc>>,
    last_sync: BTreeMap<Key, DateTime<Utc>>,
    overlaps: BTreeMap<Key, u64>,
    lease_refused: BTreeMap<Key, u64>,
    running: BTreeMap<Key, i64>,
}

/// Counters of the scheduler's runs.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A run started.
    pub fn started(&self, job: &str, workspace: &str) {
        self.with(|i| *i.running.entry((job.into(), workspace.into())).or_default() += 1);
    }

    /// A run ended.
    pub fn finished(&self, run: &JobRun) {
        let key = (run.job.clone(), run.workspace.clone());
        self.with(|i| {
            let r = i.running.entry(key.clone()).or_default();
            *r = (*r - 1).max(0);
            *i.runs
                .entry((
                    run.job.clone(),
                    run.workspace.clone(),
                    run.status.as_str().into(),
                ))
                .or_default() += 1;
            let s = i.seconds.entry(key.clone()).or_default();
            s.0 += run.seconds();
            s.1 += 1;
            for st in &run.stages {
                *i.rows
                    .entry((run.job.clone(), run.workspace.clone(), st.stage.clone()))
                    .or_default() += st.rows;
                if st.stage == "sync" && st.status == RunStatus::Succeeded {
                    i.last_sync.insert(key.clone(), run.ended_at);
                }
            }
            if run.status == RunStatus::Succeeded {
                i.last_success.insert(key.clone(), run.ended_at);
            } else if matches!(run.status, RunStatus::Failed | RunStatus::TimedOut) {
                *i.failures.entry(key).or_default() += 1;
            }
        });
    }

    /// A started task ended without a run (lease refused, could not start).
    pub fn finished_without_run(&self, job: &str, workspace: &str) {
        self.with(|i| {
            let r = i.running.entry((job.into(), workspace.into())).or_default();
            *r = (*r - 1).max(0);
        });
    }

    /// A tick found the previous run of the job and workspace still running.
    pub fn overlap_skipped(&self, job: &str, workspace: &str) {
        self.with(|i| {
            *i.overlaps
                .entry((job.into(), workspace.into()))
                .or_default() += 1
        });
    }

    /// Another process held the lease.
    pub fn lease_refused(&self, job: &str, workspace: &str) {
        self.with(|i| {
            *i.lease_refused
                .entry((job.into(), workspace.into()))
                .or_default() += 1
        });
    }

    /// The text exposition at `now`.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        self.with(|i| {
            let mut out = String::new();
            let mut family = |name: &str, kind: &str, help: &str| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            };
            family("revlake_job_runs_total", "counter", "Job runs ended, by status.");
            let mut body = String::new();
            for ((job, ws, status), n) in &i.runs {
                let _ = writeln!(
                    body,
                    "revlake_job_runs_total{{job=\"{}\",workspace=\"{}\",status=\"{}\"}} {n}",
                    esc(job),
                    esc(ws),
                    esc(status)
                );
            }
            out.push_str(&body);
            let two = |out: &mut String, name: &str, map: &BTreeMap<Key, u64>| {
                for ((job, ws), n) in map {
                    let _ = writeln!(out, "{name}{{job=\"{}\",workspace=\"{}\"}} {n}", esc(job), esc(ws));
                }
            };
            let _ = writeln!(out, "# HELP revlake_job_failures_total Job runs that failed or timed out.\n# TYPE revlake_job_failures_total counter");
            two(&mut out, "revlake_job_failures_total", &i.failures);
            let _ = writeln!(out, "# HELP revlake_job_overlaps_skipped_total Ticks skipped because the previous run was still running.\n# TYPE revlake_job_overlaps_skipped_total counter");
            two(&mut out, "revlake_job_overlaps_skipped_total", &i.overlaps);
            let _ = writeln!(out, "# HELP revlake_job_lease_refused_total Runs not started because another process held the lease.\n# TYPE revlake_job_lease_refused_total counter");
            two(&mut out, "revlake_job_lease_refused_total", &i.lease_refused);
            let _ = writeln!(out, "# HELP revlake_job_running Runs in progress.\n# TYPE revlake_job_running gauge");
            for ((job, ws), n) in &i.running {
                let _ = writeln!(out, "revlake_job_running{{job=\"{}\",workspace=\"{}\"}} {n}", esc(job), esc(ws));
            }
            let _ = writeln!(out, "# HELP revlake_job_duration_seconds Time job runs took.\n# TYPE revlake_job_duration_seconds summary");
            for ((job, ws), (sum, count)) in &i.seconds {
                let labels = format!("job=\"{}\",workspace=\"{}\"", esc(job), esc(ws));
                let _ = writeln!(out, "revlake_job_duration_seconds_sum{{{labels}}} {sum}");
                let _ = writeln!(out, "revlake_job_duration_seconds_count{{{labels}}} {count}");
            }
            let _ = writeln!(out, "# HELP revlake_job_rows_total Rows written by each stage of the job's runs.\n# TYPE revlake_job_rows_total counter");
            for ((job, ws, stage), n) in &i.rows {
                let _ = writeln!(
                    out,
                    "revlake_job_rows_total{{job=\"{}\",workspace=\"{}\",stage=\"{}\"}} {n}",
                    esc(job),
                    esc(ws),
                    esc(stage)
                );
            }
            let _ = writeln!(out, "# HELP revlake_job_last_success_timestamp_seconds When the job last succeeded (Unix time).\n# TYPE revlake_job_last_success_timestamp_seconds gauge");
            for ((job, ws), t) in &i.last_success {
                let _ = writeln!(out, "revlake_job_last_success_timestamp_seconds{{job=\"{}\",workspace=\"{}\"}} {}", esc(job), esc(ws), t.timestamp());
            }
            let _ = writeln!(out, "# HELP revlake_sync_lag_seconds Seconds since the job's last successful sync stage.\n# TYPE revlake_sync_lag_seconds gauge");
            for ((job, ws), t) in &i.last_sync {
                let lag = (now - *t).num_milliseconds().max(0) as f64 / 1000.0;
                let _ = writeln!(out, "revlake_sync_lag_seconds{{job=\"{}\",workspace=\"{}\"}} {lag}", esc(job), esc(ws));
            }
            out
        })
    }
}

/// A label value escaped for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut socket, _)) = accepted else { continue };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut read = 0;
                    // Read the request head (bounded); the body, if any, is ignored.
                    while read < buf.len() {
                        match tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf[read..])).await {
                            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                            Ok(Ok(n)) => {
                                read += n;
                                if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                                    break;
                                }
                            }
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..read]);
                    let first = head.lines().next().unwrap_or_default();
                    let mut parts = first.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let (status, content_type, body) = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
                        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render(Utc::now()))
                    } else {
                        ("404 Not Found", "text/plain; charset=utf-8", "revlake: GET /metrics\n".to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::runlog::{StageRun, Trigger};

    #[test]
    fn renders_counters_with_escaped_labels() {
        let m = Metrics::default();
        let t: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        m.started("hourly", "a\"b");
        m.finished(&JobRun {
            run_id: "r".into(),
            job: "hourly".into(),
            workspace: "a\"b".into(),
            trigger: Trigger::Schedule,
            scheduled_for: None,
            started_at: t,
            ended_at: t + chrono::Duration::seconds(2),
            status: RunStatus::Succeeded,
            stages: vec![StageRun {
                stage: "sync".into(),
                status: RunStatus::Succeeded,
                rows: 7,
                attempts: 1,
                seconds: 2.0,
                note: String::new(),
                error: None,
            }],
            error: None,
            holder: "h".into(),
        });
        let text = m.render(t + chrono::Duration::seconds(12));
        assert!(
            text.contains(
                "revlake_job_runs_total{job=\"hourly\",workspace=\"a\\\"b\",status=\"succeeded\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "revlake_job_rows_total{job=\"hourly\",workspace=\"a\\\"b\",stage=\"sync\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains("revlake_sync_lag_seconds{job=\"hourly\",workspace=\"a\\\"b\"} 10"),
            "{text}"
        );
        assert!(
            text.contains(
                "revlake_job_duration_seconds_count{job=\"hourly\",workspace=\"a\\\"b\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE revlake_job_runs_total counter"));
    }
}
