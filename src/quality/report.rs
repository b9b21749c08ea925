//! Quality reports over `ops.quality_results`: per dataset, its checks as of the latest run
//! that checked it, each check's trend over the recent runs, failing samples, row counts over
//! time and freshness. Rendered as a self-contained HTML page (inline CSS and SVG, no
//! scripts, no network), JSON, JUnit XML (CI systems show failures natively) or Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{QualityError, RESULTS_DATASET, Result};
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::sql::{SessionOptions, SqlSession};

/// Runs shown in trends.
pub const TREND_RUNS: usize = 30;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Html,
    Json,
    Junit,
    Markdown,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub generated_at: String,
    pub lake: String,
    pub workspace: Option<String>,
    pub runs: usize,
    pub checks: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub datasets: Vec<DatasetSection>,
}

/// One dataset's section.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSection {
    pub dataset: String,
    pub version: i64,
    pub run_id: String,
    pub checked_at: String,
    /// The worst status of its latest checks: pass, fail or error.
    pub status: String,
    pub rows: u64,
    /// Hours since the newest value / commit, from its freshness checks.
    pub freshness_hours: Option<f64>,
    pub checks: Vec<CheckRow>,
    /// `(checked_at, rows)` per run, oldest first.
    pub row_counts: Vec<(String, u64)>,
}

/// One check (in one workspace) as of the dataset's latest run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    pub check: String,
    pub workspace_id: String,
    pub kind: String,
    pub column: Option<String>,
    pub severity: String,
    pub status: String,
    pub failing_rows: u64,
    pub total_rows: u64,
    pub observed: Option<f64>,
    pub threshold: String,
    pub message: String,
    pub sample: Vec<String>,
    /// Failing rows per run, oldest first (with the run's status).
    pub trend: Vec<(String, u64, String)>,
}

#[derive(Debug, Clone)]
struct Row {
    workspace_id: String,
    run_id: String,
    dataset: String,
    version: i64,
    check: String,
    kind: String,
    column: Option<String>,
    severity: String,
    status: String,
    failing_rows: u64,
    total_rows: u64,
    observed: Option<f64>,
    threshold: String,
    message: String,
    sample: Vec<String>,
    checked_at: i64,
}

/// Builds the report from the last [`TREND_RUNS`] runs recorded in the lake.
pub async fn build(lake: &Lake, workspace: Option<&WorkspaceId>) -> Result<QualityReport> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: workspace.cloned(),
            ..SessionOptions::default()
        },
    )
    .await?;
    let results: DatasetRef = RESULTS_DATASET.parse()?;
    if !session.tables().contains(&results) {
        return Err(QualityError::Select {
            selector: RESULTS_DATASET.into(),
            reason: "no check has run on this lake yet: run `revlake check` first".into(),
        });
    }
    let sql = format!(
        "SELECT workspace_id, run_id, dataset, version, check_name, kind, column_name, severity, status, \
         failing_rows, total_rows, observed, threshold, message, sample, checked_at \
         FROM {RESULTS_DATASET} WHERE run_id IN (SELECT run_id FROM {RESULTS_DATASET} GROUP BY run_id \
         ORDER BY max(checked_at) DESC LIMIT {TREND_RUNS}) ORDER BY checked_at, dataset, check_name, workspace_id"
    );
    let batches = session.query(&sql).await?.collect().await.map_err(|e| {
        QualityError::Sql(crate::sql::SqlError::Execution {
            source: Box::new(e),
        })
    })?;
    let rows = read_rows(&batches);
    Ok(assemble(
        rows,
        lake.url().to_string(),
        workspace.map(|w| w.as_str().to_string()),
    ))
}

fn assemble(rows: Vec<Row>, lake: String, workspace: Option<String>) -> QualityReport {
    let runs = {
        let mut ids: Vec<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    let mut by_dataset: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_dataset.entry(&r.dataset).or_default().push(r);
    }
    let mut datasets = Vec::new();
    for (dataset, rs) in by_dataset {
        // Rows come ordered by time: the latest run is the last row's.
        let Some(last) = rs.last() else { continue };
        let latest: Vec<&&Row> = rs.iter().filter(|r| r.run_id == last.run_id).collect();
        let mut run_times: Vec<(i64, &str)> = rs
            .iter()
            .map(|r| (r.checked_at, r.run_id.as_str()))
            .collect();
        run_times.sort();
        run_times.dedup();
        let checks: Vec<CheckRow> = latest
            .iter()
            .map(|r| CheckRow {
                check: r.check.clone(),
                workspace_id: r.workspace_id.clone(),
                kind: r.kind.clone(),
                column: r.column.clone(),
                severity: r.severity.clone(),
                status: r.status.clone(),
                failing_rows: r.failing_rows,
                total_rows: r.total_rows,
                observed: r.observed,
                threshold: r.threshold.clone(),
                message: r.message.clone(),
                sample: r.sample.clone(),
                trend: rs
                    .iter()
                    .filter(|x| x.check == r.check && x.workspace_id == r.workspace_id)
                    .map(|x| (time_text(x.checked_at), x.failing_rows, x.status.clone()))
                    .collect(),
            })
            .collect();
        let status = if checks.iter().any(|c| c.status == "error") {
            "error"
        } else if checks.iter().any(|c| c.status == "fail") {
            "fail"
        } else {
            "pass"
        };
        // Rows per run: the largest count a check of the run saw (checks with a `where`
        // see fewer), summed over workspaces.
        let mut per_run: BTreeMap<(i64, &str), BTreeMap<&str, u64>> = BTreeMap::new();
        for r in &rs {
            let e = per_run
                .entry((r.checked_at, r.run_id.as_str()))
                .or_default()
                .entry(r.workspace_id.as_str())
                .or_default();
            *e = (*e).max(r.total_rows);
        }
        let row_counts: Vec<(String, u64)> = per_run
            .iter()
            .map(|((t, _), ws)| (time_text(*t), ws.values().sum()))
            .collect();
        let freshness_hours = latest
            .iter()
            .filter(|r| r.kind == "freshness")
            .filter_map(|r| r.observed)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        datasets.push(DatasetSection {
            dataset: dataset.to_string(),
            version: last.version,
            run_id: last.run_id.clone(),
            checked_at: time_text(last.checked_at),
            status: status.to_string(),
            rows: row_counts.last().map_or(0, |r| r.1),
            freshness_hours,
            checks,
            row_counts,
        });
    }
    let latest_checks = datasets.iter().flat_map(|d| d.checks.iter());
    let (mut passed, mut failed, mut errors, mut checks) = (0, 0, 0, 0);
    for c in latest_checks {
        checks += 1;
        match c.status.as_str() {
            "pass" => passed += 1,
            "fail" => failed += 1,
            _ => errors += 1,
        }
    }
    QualityReport {
        generated_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        lake,
        workspace,
        runs,
        checks,
        passed,
        failed,
        errors,
        datasets,
    }
}

fn time_text(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn read_rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let s = |i: usize| super::eval::strings(b.column(i));
        let n = |i: usize| super::eval::ints(b.column(i));
        let (ws, run, ds, ver, name, kind, col, sev, st) =
            (s(0), s(1), s(2), n(3), s(4), s(5), s(6), s(7), s(8));
        let (fail, total) = (n(9), n(10));
        let observed = super::eval::floats(b.column(11));
        let (threshold, message) = (s(12), s(13));
        let samples: Vec<Vec<String>> = {
            let col = b.column(14);
            match col.as_list_opt::<i32>() {
                Some(list) => (0..list.len())
                    .map(|j| {
                        if list.is_null(j) {
                            return Vec::new();
                        }
                        super::eval::strings(&list.value(j))
                            .into_iter()
                            .flatten()
                            .collect()
                    })
                    .collect(),
                None => vec![Vec::new(); b.num_rows()],
            }
        };
        let at: Vec<i64> = match arrow::compute::cast(
            b.column(15),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        ) {
            Ok(c) => {
                let a = c.as_primitive::<TimestampMicrosecondType>();
                (0..a.len()).map(|j| a.value(j)).collect()
            }
            Err(_) => vec![0; b.num_rows()],
        };
        for i in 0..b.num_rows() {
            out.push(Row {
                workspace_id: ws[i].clone().unwrap_or_default(),
                run_id: run[i].clone().unwrap_or_default(),
                dataset: ds[i].clone().unwrap_or_default(),
                version: ver[i].unwrap_or(-1),
                check: name[i].clone().unwrap_or_default(),
                kind: kind[i].clone().unwrap_or_default(),
                column: col[i].clone(),
                severity: sev[i].clone().unwrap_or_default(),
                status: st[i].clone().unwrap_or_default(),
                failing_rows: fail[i].unwrap_or(0).max(0) as u64,
                total_rows: total[i].unwrap_or(0).max(0) as u64,
                observed: observed[i],
                threshold: threshold[i].clone().unwrap_or_default(),
                message: message[i].clone().unwrap_or_default(),
                sample: samples[i].clone(),
                checked_at: at[i],
            });
        }
    }
    out
}

/// Renders the report.
pub fn render(report: &QualityReport, format: ReportFormat) -> Result<String> {
    match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(report).map_err(|e| QualityError::Report {
                path: "(json)".into(),
                reason: e.to_string(),
            })
        }
        ReportFormat::Junit => Ok(junit(report)),
        ReportFormat::Markdown => Ok(markdown(report)),
        ReportFormat::Html => html(report),
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a test suite per dataset, a test case per check and workspace; failed checks
/// are `<failure>`, checks that could not run `<error>`.
fn junit(report: &QualityReport) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"revlake quality\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
        report.checks, report.failed, report.errors
    );
    for d in &report.datasets {
        let failures = d.checks.iter().filter(|c| c.status == "fail").count();
        let errors = d.checks.iter().filter(|c| c.status == "error").count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" timestamp=\"{}\">",
            xml_escape(&d.dataset),
            d.checks.len(),
            xml_escape(&d.checked_at)
        );
        let _ = writeln!(
            x,
            "    <properties><property name=\"version\" value=\"{}\"/><property name=\"run_id\" value=\"{}\"/></properties>",
            d.version,
            xml_escape(&d.run_id)
        );
        for c in &d.checks {
            let name = format!("{} [{}]", c.check, c.workspace_id);
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(&d.dataset),
                xml_escape(&name)
            );
            let details = || {
                let mut t = format!(
                    "severity: {}\nthreshold: {}\nfailing rows: {} of {}\n",
                    c.severity, c.threshold, c.failing_rows, c.total_rows
                );
                if !c.sample.is_empty() {
                    let _ = writeln!(t, "sample: {}", c.sample.join(", "));
                }
                xml_escape(&t)
            };
            match c.status.as_str() {
                "fail" => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                        xml_escape(&c.severity),
                        xml_escape(&c.message),
                        details()
                    );
                }
                "error" => {
                    let _ = writeln!(
                        x,
                        ">\n      <error type=\"{}\" message=\"{}\">{}</error>\n    </testcase>",
                        xml_escape(&c.severity),
                        xml_escape(&c.message),
                        details()
                    );
                }
                _ => {
                    let _ = writeln!(x, "/>");
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(report: &QualityReport) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Data quality\n\n{} checks: {} passed, {} failed, {} errors (lake `{}`, generated {}).\n",
        report.checks,
        report.passed,
        report.failed,
        report.errors,
        report.lake,
        report.generated_at
    );
    for d in &report.datasets {
        let _ = writeln!(
            m,
            "## {} ({}): version {}, {} rows, checked {}\n",
            d.dataset, d.status, d.version, d.rows, d.checked_at
        );
        m.push_str(
            "| check | workspace | severity | status | failing rows | threshold | message |\n",
        );
        m.push_str("| --- | --- | --- | --- | ---: | --- | --- |\n");
        for c in &d.checks {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&c.check),
                md_cell(&c.workspace_id),
                c.severity,
                if c.status == "pass" {
                    "pass".to_string()
                } else {
                    format!("**{}**", c.status)
                },
                c.failing_rows,
                md_cell(&c.threshold),
                md_cell(&c.message)
            );
        }
        m.push('\n');
    }
    m
}

/// A small bar chart of failing rows per run (red bars for failed runs), inline SVG.
fn trend_svg(trend: &[(String, u64, String)]) -> String {
    let (w, h) = (120.0, 24.0);
    let n = trend.len().max(1) as f64;
    let max = trend.iter().map(|t| t.1).max().unwrap_or(0).max(1) as f64;
    let bw = (w / n).min(12.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>failing rows over the last {} runs</title>",
        trend.len()
    );
    for (i, (at, v, status)) in trend.iter().enumerate() {
        let bh = if *v == 0 {
            2.0
        } else {
            4.0 + (h - 4.0) * (*v as f64 / max)
        };
        let color = match status.as_str() {
            "pass" => "#2e7d32",
            "fail" => "#c62828",
            _ => "#ef6c00",
        };
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}: {v} ({})</title></rect>",
            i as f64 * bw,
            h - bh,
            (bw - 1.0).max(1.0),
            xml_escape(at),
            xml_escape(status)
        );
    }
    s.push_str("</svg>");
    s
}

/// A line of rows per run, inline SVG.
fn rows_svg(points: &[(String, u64)]) -> String {
    let (w, h) = (240.0, 48.0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let step = if points.len() > 1 {
        w / (points.len() - 1) as f64
    } else {
        0.0
    };
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 4.0 - (h - 8.0) * p.1 as f64 / max
            )
        })
        .collect();
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"-2 0 {} {h}\" role=\"img\"><title>rows over the last {} runs</title>",
        w + 4.0,
        points.len()
    );
    if coords.len() > 1 {
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\" points=\"{}\"/>",
            coords.join(" ")
        );
    }
    for (c, p) in coords.iter().zip(points) {
        let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(
            s,
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"2\" fill=\"#1565c0\"><title>{}: {} rows</title></circle>",
            xml_escape(&p.0),
            p.1
        );
    }
    s.push_str("</svg>");
    s
}

const HTML_TEMPLATE: &str = include_str!("report.html.j2");

fn html(report: &QualityReport) -> Result<String> {
    use minijinja::{Environment, Value, context};
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", HTML_TEMPLATE)
        .map_err(|e| QualityError::Report {
            path: "(template)".into(),
            reason: e.to_string(),
        })?;
    let charts: Vec<Value> = report
        .datasets
        .iter()
        .map(|d| {
            context! {
                rows => Value::from_safe_string(rows_svg(&d.row_counts)),
                trends => d.checks.iter().map(|c| Value::from_safe_string(trend_svg(&c.trend))).collect::<Vec<_>>(),
            }
        })
        .collect();
    let template = env
        .get_template("report.html")
        .map_err(|e| QualityError::Report {
            path: "(template)".into(),
            reason: e.to_string(),
        })?;
    template
        .render(context! { r => Value::from(minijinja::value::Serde(report)), charts => charts })
        .map_err(|e| QualityError::Report {
            path: "(html)".into(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, at: i64, check: &str, status: &str, failing: u64) -> Row {
        Row {
            workspace_id: "acme".into(),
            run_id: run.into(),
            dataset: "staging.deals".into(),
            version: at,
            check: check.into(),
            kind: "not_null".into(),
            column: Some("id".into()),
            severity: "critical".into(),
            status: status.into(),
            failing_rows: failing,
            total_rows: 100 + at as u64,
            observed: None,
            threshold: "no nulls".into(),
            message: if failing > 0 {
                format!("{failing} rows with null `id` <em>")
            } else {
                String::new()
            },
            sample: vec!["d1".into(), "d<2>".into()],
            checked_at: at * 1_000_000,
        }
    }

    fn report() -> QualityReport {
        let rows = vec![
            row("r1", 1, "not_null(id)", "pass", 0),
            row("r1", 1, "unique(id)", "pass", 0),
            row("r2", 2, "not_null(id)", "fail", 3),
            row("r2", 2, "unique(id)", "pass", 0),
        ];
        assemble(rows, "file:///lake".into(), None)
    }

    #[test]
    fn latest_run_per_dataset_with_trends() {
        let r = report();
        assert_eq!((r.runs, r.checks, r.passed, r.failed), (2, 2, 1, 1));
        let d = &r.datasets[0];
        assert_eq!(d.status, "fail");
        assert_eq!(d.run_id, "r2");
        assert_eq!(d.rows, 102);
        assert_eq!(d.row_counts.len(), 2);
        let c = d.checks.iter().find(|c| c.check == "not_null(id)").unwrap();
        assert_eq!(c.trend.iter().map(|t| t.1).collect::<Vec<_>>(), [0, 3]);
    }

    #[test]
    fn junit_counts_and_escapes() {
        let x = render(&report(), ReportFormat::Junit).unwrap();
        assert!(x.contains("tests=\"2\" failures=\"1\" errors=\"0\""), "{x}");
        assert!(
            x.contains("<failure type=\"critical\" message=\"3 rows with null `id` &lt;em&gt;\">"),
            "{x}"
        );
        assert!(x.contains("name=\"unique(id) [acme]\"/>"), "{x}");
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let h = render(&report(), ReportFormat::Html).unwrap();
        assert!(h.starts_with("<!doctype html>"), "{}", &h[..40]);
        assert!(h.contains("<svg"));
        assert!(h.contains("d&lt;2&gt;"), "samples are escaped");
        assert!(
            !h.contains("<em>") && h.contains("&lt;em&gt;"),
            "messages are escaped"
        );
        for banned in ["<script", "http://", "https://", "<link"] {
            let outside_svg_ns = h.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside_svg_ns.contains(banned), "{banned} in the page");
        }
    }

    #[test]
    fn markdown_tables() {
        let m = render(&report(), ReportFormat::Markdown).unwrap();
        assert!(
            m.contains("| not_null(id) | acme | critical | **fail** | 3 |"),
            "{m}"
        );
    }
}
