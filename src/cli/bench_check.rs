//! `revlake bench check`: the shipped checks of `staging.deals` on N synthetic deals, against
//! Soda Core (DuckDB) running the same checks on the same Parquet files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use revlake::lake::{DatasetRef, Lake, WriteMode};
use revlake::project::Project;
use revlake::quality::{CheckOptions, Status, run_checks};
use revlake::sql::{SessionOptions, SqlSession};

/// Time the shipped checks of staging.deals on N synthetic deals (with staging.accounts and
/// staging.users for the relationship checks) in a fresh local lake, and Soda Core on DuckDB
/// running the same checks on the same Parquet files (its Python is --peer-python; skipped when
/// it cannot import soda).
///
/// The deals are shaped like the generated org's (8 stages, 2 sources, amounts, dates) with a
/// few planted defects, so some checks fail and sample keys. Run it on a release build:
/// `cargo run --release -- bench check`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake bench check\n  revlake bench check --deals 100000 --no-peer\n  revlake bench check --peer-python /tmp/sodavenv/bin/python --dir /tmp/bench-check"
)]
pub struct CheckBenchArgs {
    /// Deals in staging.deals (accounts: a tenth of it; users: 500).
    #[arg(long, default_value_t = 1_000_000)]
    deals: u64,
    /// Keep the lake here (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The Python with soda-core-duckdb installed.
    #[arg(long, default_value = "python3", value_name = "PATH")]
    peer_python: String,
    /// Do not run Soda.
    #[arg(long)]
    no_peer: bool,
}

const STAGES: [(&str, &str, f64); 8] = [
    ("lead", "Prospecting", 0.05),
    ("qualification", "Qualification", 0.1),
    ("discovery", "Needs Analysis", 0.2),
    ("demo", "Value Proposition", 0.4),
    ("proposal", "Proposal/Price Quote", 0.6),
    ("negotiation", "Negotiation/Review", 0.8),
    ("closed_won", "Closed Won", 1.0),
    ("closed_lost", "Closed Lost", 0.0),
];

/// The synthetic `staging.deals`: pseudo-random columns from multiplicative hashes of the row
/// number; 1 in 1000 amounts negative, 1 in 2000 stages unmapped, 1 in 200 without account,
/// 1 in 5000 owned by a user that does not exist.
pub(super) fn deals_sql(n: u64) -> String {
    let accounts = (n / 10).max(1);
    let stage_case = |pick: &dyn Fn(&(&str, &str, f64)) -> String| {
        let arms: Vec<String> = STAGES
            .iter()
            .enumerate()
            .map(|(i, s)| format!("WHEN {i} THEN {}", pick(s)))
            .collect();
        format!("CASE (value * 17 + value / 7) % 8 {} END", arms.join(" "))
    };
    let stage = stage_case(&|s| format!("'{}'", s.0));
    let raw = stage_case(&|s| format!("'{}'", s.1));
    let prob = stage_case(&|s| format!("{:?}", s.2));
    format!(
        "WITH s AS (SELECT value, (value * 2654435761) % 1000003 AS r FROM range({n})) \
         SELECT 'bench' AS workspace_id, concat('d', value) AS id, \
           CASE value % 2 WHEN 0 THEN 'salesforce' ELSE 'hubspot' END AS source, \
           concat('006', value) AS source_id, NULL AS external_ids, \
           concat('{{\"Id\":\"006', value, '\"}}') AS source_data, \
           to_timestamp_seconds(1672531200 + (value * 7919) % 63072000) AS created_at, \
           to_timestamp_seconds(1672531200 + (value * 7919) % 63072000 + 86400 * (r % 90)) AS updated_at, \
           concat('Deal ', value) AS name, \
           CASE WHEN value % 200 = 0 THEN NULL ELSE concat('a', (value * 31) % {accounts}) END AS account_id, \
           CASE WHEN value % 5000 = 1 THEN 'u-gone' ELSE concat('u', value % 500) END AS owner_id, \
           CAST(r % 200000 AS DOUBLE) * CASE WHEN value % 1000 = 7 THEN -1.0 ELSE 1.0 END AS amount, \
           'USD' AS currency, \
           CAST(r % 200000 AS DOUBLE) * CASE WHEN value % 1000 = 7 THEN -1.0 ELSE 1.0 END AS amount_usd, \
           CASE WHEN value % 2000 = 3 THEN NULL ELSE {stage} END AS stage, \
           CASE WHEN value % 2000 = 3 THEN 'Legacy Stage' ELSE {raw} END AS stage_raw, \
           'default' AS pipeline, {prob} AS probability, \
           CAST(to_timestamp_seconds(1672531200 + (value * 7919) % 63072000 + 86400 * (30 + r % 120)) AS DATE) AS expected_close, \
           CASE WHEN {stage} IN ('closed_won', 'closed_lost') THEN to_timestamp_seconds(1672531200 + (value * 7919) % 63072000 + 86400 * (30 + r % 120)) END AS closed_at, \
           {stage} IN ('closed_won', 'closed_lost') AS is_closed, \
           {stage} = 'closed_won' AS is_won, \
           CASE r % 4 WHEN 0 THEN 'inbound' WHEN 1 THEN 'outbound' WHEN 2 THEN 'partner' ELSE 'event' END AS lead_source, \
           CASE r % 3 WHEN 0 THEN 'smb' WHEN 1 THEN 'mid_market' ELSE 'enterprise' END AS segment, \
           CASE r % 5 WHEN 0 THEN 'software' WHEN 1 THEN 'finance' WHEN 2 THEN 'health' WHEN 3 THEN 'retail' ELSE 'industrial' END AS industry \
         FROM s"
    )
}

pub(super) fn accounts_sql(n: u64) -> String {
    format!(
        "SELECT 'bench' AS workspace_id, concat('a', value) AS id, 'salesforce' AS source, concat('001', value) AS source_id, \
         NULL AS external_ids, NULL AS source_data, NULL AS created_at, NULL AS updated_at, concat('Account ', value) AS name, \
         concat('acct', value, '.example.com') AS domain, 'software' AS industry, CAST(value % 5000 AS BIGINT) AS employee_count, \
         CAST(value % 100 AS DOUBLE) * 1e6 AS annual_revenue, concat('u', value % 500) AS owner_id, 'source' AS match_method \
         FROM range({})",
        (n / 10).max(1)
    )
}

pub(super) const USERS_SQL: &str = "SELECT 'bench' AS workspace_id, concat('u', value) AS id, 'salesforce' AS source, concat('005', value) AS source_id, \
    NULL AS external_ids, NULL AS source_data, NULL AS created_at, NULL AS updated_at, concat('Rep ', value) AS name, \
    concat('rep', value, '@example.com') AS email, 'AE' AS title, CASE WHEN value = 0 THEN NULL ELSE 'u0' END AS manager_id, true AS is_active \
    FROM range(500)";

pub(super) async fn write(lake: &Lake, project: &Project, dataset: &str, sql: &str) -> Result<u64> {
    let dataset: DatasetRef = dataset.parse()?;
    let session = SqlSession::open(lake, &SessionOptions::default()).await?;
    let stream = session
        .query(sql)
        .await?
        .execute_stream()
        .await
        .with_context(|| format!("generating {dataset}"))?;
    let outcome = lake
        .write(dataset.clone())
        .with_schema(project.schema(&dataset))
        .with_mode(WriteMode::Overwrite)
        .with_stream(stream)
        .await?;
    Ok(outcome.rows)
}

/// The same checks as `schemas/staging.deals.toml` ships, in SodaCL (row-count change and
/// freshness need Soda Cloud's history or a time column and are left out of both sides).
const SODA_SCRIPT: &str = r#"
import json, sys, time
import duckdb
from soda.scan import Scan

root = sys.argv[1]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
for t in ["deals", "accounts", "users"]:
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{root}/staging/{t}/*/*.parquet', hive_partitioning = true)")
checks = """
checks for deals:
  - row_count > 0
  - duplicate_count(workspace_id, id) = 0
  - invalid_count(stage) = 0:
      valid values: [lead, qualification, discovery, demo, proposal, negotiation, closed_won, closed_lost]
  - invalid_count(amount_usd) = 0:
      valid min: 0
  - invalid_count(probability) = 0:
      valid min: 0
      valid max: 1
  - missing_percent(account_id) < 5
  - missing_percent(amount_usd) < 5
  - values in (account_id) must exist in accounts (id)
  - values in (owner_id) must exist in users (id)
  - failed rows:
      name: closed_after_created
      fail condition: NOT (closed_at IS NULL OR created_at IS NULL OR closed_at >= created_at)
  - failed rows:
      name: won_deals_are_closed
      fail condition: NOT (is_won IS NOT TRUE OR is_closed)
  - failed rows:
      name: unmapped_stages
      fail condition: stage IS NULL AND stage_raw IS NOT NULL
"""
scan = Scan()
scan.set_data_source_name("bench")
scan.add_duckdb_connection(duckdb_connection=con, data_source_name="bench")
scan.add_sodacl_yaml_str(checks)
t = time.perf_counter()
scan.execute()
seconds = time.perf_counter() - t
results = scan.get_scan_results()
failed = [c["name"] for c in results["checks"] if c["outcome"] == "fail"]
print(json.dumps({"seconds": seconds, "checks": len(results["checks"]), "failed": failed,
                  "queries": len(results.get("queries", [])) if isinstance(results.get("queries"), list) else None}))
"#;

pub async fn run(project: &Project, args: CheckBenchArgs) -> Result<std::process::ExitCode> {
    let temp = tempfile::tempdir().context("creating a temporary folder")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lake_dir = dir.join("lake");
    if lake_dir.exists() {
        bail!("{} exists: pass an empty --dir", lake_dir.display());
    }
    let lake = Lake::open(&lake_dir.display().to_string()).await?;
    println!(
        "revlake bench check: {} synthetic deals in {}",
        args.deals,
        lake_dir.display()
    );
    let t = Instant::now();
    let users = write(&lake, project, "staging.users", USERS_SQL).await?;
    let accounts = write(
        &lake,
        project,
        "staging.accounts",
        &accounts_sql(args.deals),
    )
    .await?;
    let deals = write(&lake, project, "staging.deals", &deals_sql(args.deals)).await?;
    println!(
        "  wrote {deals} deals, {accounts} accounts, {users} users in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let run = run_checks(
        &lake,
        project,
        &CheckOptions {
            workspace: None,
            select: vec!["staging.deals".into()],
        },
    )
    .await?;
    let seconds = t.elapsed().as_secs_f64();
    let report = run
        .reports
        .first()
        .context("staging.deals has no checks in this project's schemas")?;
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| format!("{} ({} rows)", r.check, r.failing_rows))
        .collect();
    println!(
        "  revlake: {} checks in {seconds:.2}s, {} scans (evaluation {:.2}s), failed: {}",
        report.results.len(),
        report.scans,
        report.elapsed.as_secs_f64(),
        failed.join(", ")
    );
    println!(
        "  peak RSS {:.0} MB",
        super::bench::peak_rss_mb().unwrap_or(f64::NAN)
    );

    if args.no_peer {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    match soda(&args.peer_python, &lake_dir) {
        Ok(v) => {
            let peer = v["seconds"].as_f64().unwrap_or(f64::NAN);
            println!(
                "  Soda Core (DuckDB): {} checks in {peer:.2}s, failed: {}",
                v["checks"], v["failed"]
            );
            println!("  ratio (Soda / revlake): {:.2}x", peer / seconds);
        }
        Err(e) => println!("  Soda Core skipped: {e:#}"),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn soda(python: &str, lake: &Path) -> Result<serde_json::Value> {
    let out = Command::new(python)
        .arg("-c")
        .arg(SODA_SCRIPT)
        .arg(lake)
        .output()
        .with_context(|| format!("running {python}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{}", err.lines().last().unwrap_or("failed"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("reading Soda's output: {last}"))
}
