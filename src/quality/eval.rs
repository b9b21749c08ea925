//! Evaluating a dataset's checks as DataFusion queries.
//!
//! The row-level kinds (`not_null`, `accepted_values`, `range`, `regex`, `expression`,
//! `null_rate_max`, `unmapped_stages`, `freshness` of a column) and the counts `not_empty` and
//! `row_count_change_max` need are one aggregate query, one scan of the dataset grouped by
//! workspace: a `count(*) FILTER (WHERE <failure>)` per check. Only checks that fail cost more:
//! one query collects up to [`SAMPLE_SIZE`] failing keys per workspace for all of them.
//! `unique`, `relationships` and `custom_sql` are a query each (an aggregation, an anti join,
//! the user's query), returning their counts and samples together.
//!
//! A check whose SQL cannot be planned or run (a column the table lacks, a bad cast) gets the
//! status `error` with the engine's message; the other checks of the dataset still run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::{DateTime, Utc};

use super::spec::{Check, CheckKind, Severity, quote_ident, quote_literal};
use super::{QualityError, Result};
use crate::lake::{AsOf, DatasetRef, Lake, WorkspaceId};
use crate::project::{DatasetSchema, WORKSPACE_COLUMN};
use crate::sql::SqlSession;

/// Failing keys kept per check and workspace.
pub const SAMPLE_SIZE: usize = 20;

/// The outcome of one check in one workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// The check could not be evaluated (its SQL failed); gates treat it as a failure.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's result in one workspace (a row of `ops.quality_results`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    pub workspace_id: String,
    pub dataset: String,
    pub version: i64,
    pub check: String,
    pub kind: &'static str,
    pub column: Option<String>,
    pub severity: Severity,
    pub status: Status,
    /// Rows that fail the check (for `not_empty`, `freshness` without a column and
    /// `row_count_change_max`: see [`CheckResult::observed`]).
    pub failing_rows: u64,
    /// Rows of the dataset in the workspace (after the check's `where`).
    pub total_rows: u64,
    /// The measured figure: a failure rate, a null rate, an age in hours, a relative change,
    /// a row count.
    pub observed: Option<f64>,
    pub threshold: String,
    pub message: String,
    /// Up to [`SAMPLE_SIZE`] failing keys (primary key without the workspace, `|`-joined).
    pub sample: Vec<String>,
}

impl CheckResult {
    /// Whether the result should block what reads the dataset.
    pub fn blocks(&self) -> bool {
        self.severity == Severity::Critical && self.status != Status::Pass
    }
}

/// The checks of one dataset, evaluated.
#[derive(Debug, Clone)]
pub struct DatasetReport {
    pub dataset: DatasetRef,
    pub version: i64,
    pub results: Vec<CheckResult>,
    /// Queries that scanned the dataset (or, for relationships, it and its parent).
    pub scans: usize,
    pub elapsed: Duration,
}

impl DatasetReport {
    /// The critical checks that failed or errored.
    pub fn blocking(&self) -> Vec<&CheckResult> {
        self.results.iter().filter(|r| r.blocks()).collect()
    }
}

/// Which workspaces a check run covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One workspace (the session is scoped to it).
    Workspace(WorkspaceId),
    /// Every workspace of the lake: results per workspace found in the data, plus these
    /// (so a workspace whose rows all vanished still gets `not_empty` failures).
    All { known: BTreeSet<String> },
}

/// What the rows of one check say, per workspace.
#[derive(Debug, Default, Clone)]
struct Tally {
    failing: u64,
    denominator: Option<u64>,
    max_epoch: Option<f64>,
    sample: Vec<String>,
}

/// Evaluates `checks` of `schema`'s dataset over `session` (which must see the dataset).
pub async fn check_dataset(
    lake: &Lake,
    session: &SqlSession,
    schema: &DatasetSchema,
    checks: &[Check],
    scope: &Scope,
) -> Result<DatasetReport> {
    let started = Instant::now();
    let dataset = &schema.dataset;
    let info = lake.info(dataset).await?;
    let table = dataset.to_string();
    let key = key_expr(schema, "");
    let mut scans = 0usize;

    // Per check index: the workspace tallies, or an error message.
    let mut tallies: Vec<std::result::Result<BTreeMap<String, Tally>, String>> =
        vec![Ok(BTreeMap::new()); checks.len()];
    let mut rows_by_ws: BTreeMap<String, u64> = BTreeMap::new();

    // 1. The aggregate scan of the row-level checks.
    let row_level: Vec<usize> = (0..checks.len())
        .filter(|&i| is_row_level(&checks[i].kind))
        .collect();
    {
        let mut good: Vec<usize> = row_level.clone();
        let mut first = true;
        loop {
            let sql = aggregate_sql(&table, checks, &good);
            scans += 1;
            match collect(session, &sql).await {
                Ok(batches) => {
                    read_aggregate(&batches, checks, &good, &mut tallies, &mut rows_by_ws);
                    break;
                }
                Err(e) if first && !good.is_empty() => {
                    // Find the checks at fault, one by one; the rest run together again.
                    first = false;
                    let mut kept = Vec::new();
                    for &i in &good {
                        let alone = aggregate_sql(&table, checks, &[i]);
                        scans += 1;
                        match collect(session, &alone).await {
                            Ok(_) => kept.push(i),
                            Err(e) => tallies[i] = Err(e),
                        }
                    }
                    if kept.len() == good.len() {
                        return Err(QualityError::Check {
                            dataset: table,
                            check: "(all row-level checks)".into(),
                            message: e,
                        });
                    }
                    good = kept;
                }
                Err(e) => {
                    return Err(QualityError::Check {
                        dataset: table,
                        check: "(row counts)".into(),
                        message: e,
                    });
                }
            }
        }
    }

    // 2. Samples of the failing row-level checks, in one query.
    let sampled: Vec<usize> = row_level
        .iter()
        .copied()
        .filter(|&i| {
            failure_predicate(&checks[i]).is_some()
                && tallies[i]
                    .as_ref()
                    .is_ok_and(|t| t.values().any(|x| x.failing > 0))
        })
        .filter(|&i| !matches!(checks[i].kind, CheckKind::Freshness { .. }))
        .collect();
    if !sampled.is_empty() {
        let sql = samples_sql(&table, &key, checks, &sampled);
        scans += sampled.len();
        if let Ok(batches) = collect(session, &sql).await {
            for b in &batches {
                let idx = ints(b.column(0));
                let ws = strings(b.column(1));
                let keys = strings(b.column(2));
                for r in 0..b.num_rows() {
                    let (Some(i), Some(w)) = (idx[r], ws[r].clone()) else {
                        continue;
                    };
                    if let Some(Ok(t)) = tallies.get_mut(i as usize) {
                        t.entry(w)
                            .or_default()
                            .sample
                            .push(keys[r].clone().unwrap_or_else(|| "(null)".into()));
                    }
                }
            }
        }
    }

    // 3. The checks that are a query of their own.
    let tables = session.tables();
    for (i, check) in checks.iter().enumerate() {
        let sql = match &check.kind {
            CheckKind::Unique { columns } => unique_sql(&table, &key, columns, &check.filter),
            CheckKind::Relationships {
                column,
                to,
                to_column,
            } => {
                if !tables.contains(to) {
                    tallies[i] = Err(format!("{to} is not in the lake"));
                    continue;
                }
                relationships_sql(
                    &table,
                    &key_expr(schema, "c."),
                    column,
                    to,
                    to_column,
                    &check.filter,
                )
            }
            CheckKind::CustomSql { sql } => match custom_sql(session, sql).await {
                Ok(s) => s,
                Err(e) => {
                    tallies[i] = Err(e);
                    continue;
                }
            },
            _ => continue,
        };
        scans += 1;
        tallies[i] = collect(session, &sql).await.map(|batches| {
            let mut by_ws: BTreeMap<String, Tally> = BTreeMap::new();
            for b in &batches {
                let ws = strings(b.column(0));
                let total = ints(b.column(1));
                let keys = strings(b.column(2));
                for r in 0..b.num_rows() {
                    let w = ws[r].clone().unwrap_or_else(|| fallback_ws(scope));
                    let t = by_ws.entry(w).or_default();
                    t.failing = total[r].unwrap_or(0).max(0) as u64;
                    if t.sample.len() < SAMPLE_SIZE {
                        t.sample
                            .push(keys[r].clone().unwrap_or_else(|| "(null)".into()));
                    }
                }
            }
            by_ws
        });
    }

    // 4. The workspaces reported.
    let mut workspaces: BTreeSet<String> = match scope {
        Scope::Workspace(w) => BTreeSet::from([w.as_str().to_string()]),
        Scope::All { known } => {
            let mut s = known.clone();
            s.extend(rows_by_ws.keys().cloned());
            s.extend(info.workspaces.keys().cloned());
            s
        }
    };
    workspaces.remove("(unpartitioned)");

    // 5. Row-count baselines.
    let mut baselines: BTreeMap<usize, BTreeMap<String, (i64, u64)>> = BTreeMap::new();
    for (i, check) in checks.iter().enumerate() {
        if let CheckKind::RowCountChangeMax { .. } = check.kind {
            match baseline(
                lake,
                session,
                dataset,
                &check.name,
                info.version,
                &workspaces,
            )
            .await
            {
                Ok(b) => {
                    baselines.insert(i, b);
                }
                Err(e) => tallies[i] = Err(e),
            }
        }
    }

    // 6. Results.
    let now = Utc::now();
    let mut results = Vec::with_capacity(checks.len() * workspaces.len());
    for ws in &workspaces {
        let rows = rows_by_ws.get(ws).copied().unwrap_or(0);
        for (i, check) in checks.iter().enumerate() {
            let mut r = CheckResult {
                workspace_id: ws.clone(),
                dataset: table.clone(),
                version: info.version,
                check: check.name.clone(),
                kind: check.kind_name(),
                column: check.column().map(str::to_string),
                severity: check.severity,
                status: Status::Pass,
                failing_rows: 0,
                total_rows: rows,
                observed: None,
                threshold: check.threshold(),
                message: String::new(),
                sample: Vec::new(),
            };
            match &tallies[i] {
                Err(e) => {
                    r.status = Status::Error;
                    r.message = e.clone();
                }
                Ok(by_ws) => {
                    let t = by_ws.get(ws).cloned().unwrap_or_default();
                    judge(
                        &mut r,
                        check,
                        &t,
                        rows,
                        now,
                        info.last_commit,
                        baselines.get(&i).and_then(|b| b.get(ws)),
                    );
                }
            }
            results.push(r);
        }
    }
    Ok(DatasetReport {
        dataset: dataset.clone(),
        version: info.version,
        results,
        scans,
        elapsed: started.elapsed(),
    })
}

fn fallback_ws(scope: &Scope) -> String {
    match scope {
        Scope::Workspace(w) => w.as_str().to_string(),
        Scope::All { .. } => "_all".to_string(),
    }
}

/// Sets status, counts, the observed figure and the message of `r` from the tally.
fn judge(
    r: &mut CheckResult,
    check: &Check,
    t: &Tally,
    rows: u64,
    now: DateTime<Utc>,
    last_commit: Option<DateTime<Utc>>,
    baseline: Option<&(i64, u64)>,
) {
    let rate = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    r.sample = t.sample.iter().take(SAMPLE_SIZE).cloned().collect();
    if let Some(d) = t.denominator {
        r.total_rows = d;
    }
    match &check.kind {
        CheckKind::NotEmpty { min_rows } => {
            r.observed = Some(rows as f64);
            if rows < *min_rows {
                r.status = Status::Fail;
                r.message = format!("{rows} rows, fewer than {min_rows}");
            }
        }
        CheckKind::NullRateMax { max_rate, .. } => {
            let observed = rate(t.failing, r.total_rows);
            r.observed = Some(observed);
            if observed > *max_rate {
                r.status = Status::Fail;
                r.failing_rows = t.failing;
                r.message = format!(
                    "{} of {} rows are null ({:.2}% > {:.2}%)",
                    t.failing,
                    r.total_rows,
                    observed * 100.0,
                    max_rate * 100.0
                );
            } else {
                r.sample.clear();
            }
        }
        CheckKind::Freshness {
            column,
            max_age_secs,
            max_age,
        } => {
            let newest = match column {
                Some(_) => t
                    .max_epoch
                    .and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64)),
                None => last_commit,
            };
            match newest {
                None => {
                    r.status = Status::Fail;
                    r.message = match column {
                        Some(c) => format!("no `{c}` values"),
                        None => "no commit time recorded".into(),
                    };
                }
                Some(at) => {
                    let age = (now - at).num_seconds();
                    r.observed = Some(age as f64 / 3600.0);
                    if age > *max_age_secs {
                        r.status = Status::Fail;
                        r.failing_rows = if column.is_some() { t.failing } else { 0 };
                        r.message = format!(
                            "newest {} is {} old (limit {max_age})",
                            match column {
                                Some(c) => format!("`{c}` ({})", at.to_rfc3339()),
                                None => format!("commit ({})", at.to_rfc3339()),
                            },
                            human_age(age)
                        );
                    }
                }
            }
        }
        CheckKind::RowCountChangeMax {
            max_drop,
            max_growth,
        } => {
            r.observed = Some(rows as f64);
            let Some(&(version, previous)) = baseline else {
                r.message = "no earlier version to compare with".into();
                return;
            };
            if previous == 0 {
                r.message = format!("no rows at version {version} to compare with");
                return;
            }
            let change = (rows as f64 - previous as f64) / previous as f64;
            r.observed = Some(change);
            if -change > *max_drop {
                r.status = Status::Fail;
                r.failing_rows = previous - rows;
                r.message = format!(
                    "{rows} rows, {:.1}% fewer than the {previous} of version {version}",
                    -change * 100.0
                );
            } else if let Some(g) = max_growth
                && change > *g
            {
                r.status = Status::Fail;
                r.failing_rows = rows.saturating_sub(previous);
                r.message = format!(
                    "{rows} rows, {:.1}% more than the {previous} of version {version}",
                    change * 100.0
                );
            } else {
                r.message = format!("{previous} rows at version {version}");
            }
        }
        _ => {
            r.failing_rows = t.failing;
            r.observed = Some(rate(t.failing, rows));
            if t.failing > 0 {
                r.status = Status::Fail;
                r.message = match &check.kind {
                    CheckKind::NotNull { column } => {
                        format!("{} rows with null `{column}`", t.failing)
                    }
                    CheckKind::Unique { columns } => format!(
                        "{} rows share a ({}) with another row",
                        t.failing,
                        columns.join(", ")
                    ),
                    CheckKind::AcceptedValues { column, .. } => {
                        format!(
                            "{} rows with `{column}` outside the accepted values",
                            t.failing
                        )
                    }
                    CheckKind::Relationships {
                        column,
                        to,
                        to_column,
                    } => format!(
                        "{} rows whose `{column}` is not a {to}.{to_column}",
                        t.failing
                    ),
                    CheckKind::Range { column, .. } => {
                        format!("{} rows with `{column}` out of range", t.failing)
                    }
                    CheckKind::Regex { column, pattern } => {
                        format!(
                            "{} rows with `{column}` not matching /{pattern}/",
                            t.failing
                        )
                    }
                    CheckKind::Expression { expression } => {
                        format!("{} rows where `{expression}` is false", t.failing)
                    }
                    CheckKind::CustomSql { .. } => format!("the query returned {} rows", t.failing),
                    CheckKind::UnmappedStages { raw_column, .. } => format!(
                        "{} rows whose `{raw_column}` maps to no stage (add them to datasets/seeds/stage_mappings.csv)",
                        t.failing
                    ),
                    _ => format!("{} failing rows", t.failing),
                };
            }
        }
    }
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{:.1}h", s as f64 / 3600.0),
        s => format!("{:.1}d", s as f64 / 86_400.0),
    }
}

fn is_row_level(kind: &CheckKind) -> bool {
    !matches!(
        kind,
        CheckKind::Unique { .. } | CheckKind::Relationships { .. } | CheckKind::CustomSql { .. }
    )
}

/// The SQL predicate that is true for a failing row (row-level kinds with per-row failures).
fn failure_predicate(check: &Check) -> Option<String> {
    let base = match &check.kind {
        CheckKind::NotNull { column } | CheckKind::NullRateMax { column, .. } => {
            format!("{} IS NULL", quote_ident(column))
        }
        CheckKind::AcceptedValues { column, values } => format!(
            "{c} IS NOT NULL AND {c} NOT IN ({})",
            values
                .iter()
                .map(|v| v.sql())
                .collect::<Vec<_>>()
                .join(", "),
            c = quote_ident(column)
        ),
        CheckKind::Range { column, min, max } => {
            let c = quote_ident(column);
            let parts: Vec<String> = [
                min.as_ref().map(|m| format!("{c} < {}", m.sql())),
                max.as_ref().map(|m| format!("{c} > {}", m.sql())),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("({})", parts.join(" OR "))
        }
        CheckKind::Regex { column, pattern } => format!(
            "NOT regexp_like(CAST({} AS VARCHAR), {})",
            quote_ident(column),
            quote_literal(pattern)
        ),
        CheckKind::Expression { expression } => format!("({expression}) IS FALSE"),
        CheckKind::UnmappedStages { column, raw_column } => format!(
            "{} IS NULL AND {} IS NOT NULL",
            quote_ident(column),
            quote_ident(raw_column)
        ),
        CheckKind::Freshness {
            column: Some(column),
            ..
        } => format!("{} IS NOT NULL", quote_ident(column)),
        _ => return None,
    };
    Some(match &check.filter {
        Some(w) => format!("({base}) AND ({w})"),
        None => base,
    })
}

/// `SELECT ws, count(*), <per check aggregates> FROM t GROUP BY ws`.
fn aggregate_sql(table: &str, checks: &[Check], which: &[usize]) -> String {
    let ws = quote_ident(WORKSPACE_COLUMN);
    let mut select = vec![
        format!("CAST({ws} AS VARCHAR) AS __ws"),
        "count(*) AS __rows".to_string(),
    ];
    for &i in which {
        let check = &checks[i];
        if let Some(p) = failure_predicate(check) {
            select.push(format!("count(*) FILTER (WHERE {p}) AS __f{i}"));
        }
        if let (CheckKind::NullRateMax { .. }, Some(w)) = (&check.kind, &check.filter) {
            select.push(format!("count(*) FILTER (WHERE {w}) AS __d{i}"));
        }
        if let CheckKind::Freshness {
            column: Some(c), ..
        } = &check.kind
        {
            let value = format!("CAST({} AS TIMESTAMP)", quote_ident(c));
            let max = match &check.filter {
                Some(w) => format!("max({value}) FILTER (WHERE {w})"),
                None => format!("max({value})"),
            };
            select.push(format!("CAST(to_unixtime({max}) AS DOUBLE) AS __m{i}"));
        }
    }
    format!("SELECT {} FROM {table} GROUP BY {ws}", select.join(", "))
}

fn read_aggregate(
    batches: &[RecordBatch],
    checks: &[Check],
    which: &[usize],
    tallies: &mut [std::result::Result<BTreeMap<String, Tally>, String>],
    rows_by_ws: &mut BTreeMap<String, u64>,
) {
    for b in batches {
        let schema = b.schema();
        let col = |name: &str| schema.index_of(name).ok().map(|i| b.column(i).clone());
        let ws = strings(b.column(0));
        let rows = ints(b.column(1));
        for r in 0..b.num_rows() {
            let Some(w) = ws[r].clone() else { continue };
            rows_by_ws.insert(w.clone(), rows[r].unwrap_or(0).max(0) as u64);
            for &i in which {
                let Ok(by_ws) = &mut tallies[i] else { continue };
                let t = by_ws.entry(w.clone()).or_default();
                if let Some(c) = col(&format!("__f{i}")) {
                    t.failing = ints(&c)[r].unwrap_or(0).max(0) as u64;
                }
                if let Some(c) = col(&format!("__d{i}")) {
                    t.denominator = Some(ints(&c)[r].unwrap_or(0).max(0) as u64);
                } else if matches!(checks[i].kind, CheckKind::NullRateMax { .. }) {
                    t.denominator = Some(rows[r].unwrap_or(0).max(0) as u64);
                }
                if let Some(c) = col(&format!("__m{i}")) {
                    t.max_epoch = floats(&c)[r];
                }
            }
        }
    }
}

/// The failing keys of each check: `(check index, ws, key)`, at most [`SAMPLE_SIZE`] per
/// check and workspace, the smallest keys first.
fn samples_sql(table: &str, key: &str, checks: &[Check], which: &[usize]) -> String {
    let ws = quote_ident(WORKSPACE_COLUMN);
    let parts: Vec<String> = which
        .iter()
        .filter_map(|&i| {
            let p = failure_predicate(&checks[i])?;
            Some(format!(
                "SELECT CAST({i} AS BIGINT) AS __check, CAST({ws} AS VARCHAR) AS __ws, {key} AS __key FROM {table} WHERE {p}"
            ))
        })
        .collect();
    format!(
        "SELECT __check, __ws, __key FROM (SELECT __check, __ws, __key, row_number() OVER (PARTITION BY __check, __ws ORDER BY __key) AS __rn FROM ({})) WHERE __rn <= {SAMPLE_SIZE} ORDER BY __check, __ws, __key",
        parts.join(" UNION ALL ")
    )
}

/// Wraps failing rows `(ws, key)` into `(ws, failing count, key)` rows, at most
/// [`SAMPLE_SIZE`] per workspace.
fn tally_sql(failing: &str, count: &str) -> String {
    format!(
        "SELECT __ws, __total, __key FROM (SELECT __ws, {count} AS __total, __key, row_number() OVER (PARTITION BY __ws ORDER BY __key) AS __rn FROM ({failing})) WHERE __rn <= {SAMPLE_SIZE} ORDER BY __ws, __key"
    )
}

fn unique_sql(table: &str, key: &str, columns: &[String], filter: &Option<String>) -> String {
    let ws = quote_ident(WORKSPACE_COLUMN);
    let cols: Vec<String> = columns
        .iter()
        .filter(|c| c.as_str() != WORKSPACE_COLUMN)
        .map(|c| quote_ident(c))
        .collect();
    let mut conditions: Vec<String> = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect();
    if let Some(w) = filter {
        conditions.push(format!("({w})"));
    }
    let where_ = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let group_key = if cols.is_empty() {
        key.to_string()
    } else {
        format!(
            "concat_ws('|', {})",
            cols.iter()
                .map(|c| format!("CAST({c} AS VARCHAR)"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let dups = format!(
        "SELECT CAST({ws} AS VARCHAR) AS __ws, {group_key} AS __key, count(*) AS __n FROM {table} {where_} GROUP BY {ws}, {} HAVING count(*) > 1",
        if cols.is_empty() {
            group_key.clone()
        } else {
            cols.join(", ")
        }
    );
    tally_sql(&dups, "sum(__n) OVER (PARTITION BY __ws)")
}

fn relationships_sql(
    table: &str,
    key: &str,
    column: &str,
    to: &DatasetRef,
    to_column: &str,
    filter: &Option<String>,
) -> String {
    let ws = quote_ident(WORKSPACE_COLUMN);
    let c = quote_ident(column);
    let extra = filter
        .as_ref()
        .map(|w| format!(" AND ({w})"))
        .unwrap_or_default();
    // Parents are matched within the workspace.
    let failing = format!(
        "SELECT CAST(c.{ws} AS VARCHAR) AS __ws, {key} AS __key FROM {table} c WHERE c.{c} IS NOT NULL{extra} AND NOT EXISTS (SELECT 1 FROM {to} p WHERE p.{tc} = c.{c} AND p.{ws} = c.{ws})",
        tc = quote_ident(to_column),
    );
    tally_sql(&failing, "count(*) OVER (PARTITION BY __ws)")
}

/// Wraps the user's failure query: its `workspace_id` column (if any) attributes rows, its
/// first column is the sample key.
async fn custom_sql(session: &SqlSession, sql: &str) -> std::result::Result<String, String> {
    let sql = sql.trim().trim_end_matches(';');
    let df = session.query(sql).await.map_err(|e| e.to_string())?;
    let schema = df.schema().clone();
    let fields = schema.fields();
    let first = fields
        .first()
        .ok_or_else(|| "the query returns no columns".to_string())?;
    let ws = if fields.iter().any(|f| f.name() == WORKSPACE_COLUMN) {
        format!("CAST(q.{} AS VARCHAR)", quote_ident(WORKSPACE_COLUMN))
    } else {
        "CAST(NULL AS VARCHAR)".to_string()
    };
    let failing = format!(
        "SELECT {ws} AS __ws, CAST(q.{} AS VARCHAR) AS __key FROM ({sql}) q",
        quote_ident(first.name())
    );
    Ok(tally_sql(&failing, "count(*) OVER (PARTITION BY __ws)"))
}

/// The sample key of a row: the primary key without the workspace, else `id`, else the first
/// column, as text; columns qualified by `prefix` (`c.`) when given.
fn key_expr(schema: &DatasetSchema, prefix: &str) -> String {
    let q = |c: &str| format!("{prefix}{}", quote_ident(c));
    let mut cols: Vec<&str> = schema
        .primary_key
        .iter()
        .map(String::as_str)
        .filter(|c| *c != WORKSPACE_COLUMN)
        .collect();
    if cols.is_empty() {
        if let Some(c) = schema.column("id") {
            cols.push(&c.name);
        } else if let Some(c) = schema.columns.iter().find(|c| c.name != WORKSPACE_COLUMN) {
            cols.push(&c.name);
        }
    }
    match cols.as_slice() {
        [] => "CAST(NULL AS VARCHAR)".to_string(),
        [one] => format!("CAST({} AS VARCHAR)", q(one)),
        many => format!(
            "concat_ws('|', {})",
            many.iter()
                .map(|c| format!("CAST({} AS VARCHAR)", q(c)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The version and rows per workspace a row-count check compares with: the version the
/// check last passed on (from `ops.quality_results`), else the version before this one.
async fn baseline(
    lake: &Lake,
    session: &SqlSession,
    dataset: &DatasetRef,
    check: &str,
    version: i64,
    workspaces: &BTreeSet<String>,
) -> std::result::Result<BTreeMap<String, (i64, u64)>, String> {
    let results: DatasetRef = super::RESULTS_DATASET
        .parse()
        .map_err(|e: crate::lake::LakeError| e.to_string())?;
    let mut passed: BTreeMap<String, i64> = BTreeMap::new();
    if session.tables().contains(&results) {
        let sql = format!(
            "SELECT CAST(workspace_id AS VARCHAR), max(version) FROM {RESULTS} WHERE dataset = {d} AND check_name = {c} AND status = 'pass' AND version < {version} GROUP BY workspace_id",
            RESULTS = super::RESULTS_DATASET,
            d = quote_literal(&dataset.to_string()),
            c = quote_literal(check),
        );
        for b in collect(session, &sql).await? {
            let ws = strings(b.column(0));
            let v = ints(b.column(1));
            for r in 0..b.num_rows() {
                if let (Some(w), Some(v)) = (ws[r].clone(), v[r]) {
                    passed.insert(w, v);
                }
            }
        }
    }
    let mut infos: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for ws in workspaces {
        let v = passed.get(ws).copied().unwrap_or(version - 1);
        if v < 0 {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = infos.entry(v) {
            e.insert(match lake.info_at(dataset, &AsOf::Version(v)).await {
                Ok(info) => info.workspaces,
                // Vacuumed or never written: nothing to compare with.
                Err(_) => BTreeMap::new(),
            });
        }
        let rows = infos.get(&v).and_then(|m| m.get(ws)).copied().unwrap_or(0);
        out.insert(ws.clone(), (v, rows));
    }
    Ok(out)
}

async fn collect(session: &SqlSession, sql: &str) -> std::result::Result<Vec<RecordBatch>, String> {
    let df = session.query(sql).await.map_err(|e| e.to_string())?;
    df.collect().await.map_err(|e| e.to_string())
}

/// A column as optional strings (any type arrow can cast to text; unreadable → nulls).
pub(super) fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    match arrow::compute::cast(a, &DataType::Utf8) {
        Ok(c) => {
            let s = c.as_string::<i32>();
            (0..s.len())
                .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
                .collect()
        }
        Err(_) => vec![None; a.len()],
    }
}

pub(super) fn ints(a: &ArrayRef) -> Vec<Option<i64>> {
    match arrow::compute::cast(a, &DataType::Int64) {
        Ok(c) => {
            let s = c.as_primitive::<Int64Type>();
            (0..s.len())
                .map(|i| s.is_valid(i).then(|| s.value(i)))
                .collect()
        }
        Err(_) => vec![None; a.len()],
    }
}

pub(super) fn floats(a: &ArrayRef) -> Vec<Option<f64>> {
    match arrow::compute::cast(a, &DataType::Float64) {
        Ok(c) => {
            let s = c.as_primitive::<Float64Type>();
            (0..s.len())
                .map(|i| s.is_valid(i).then(|| s.value(i)))
                .collect()
        }
        Err(_) => vec![None; a.len()],
    }
}
