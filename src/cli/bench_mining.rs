//! `revlake mine --bench`: mining timed on the lake at hand, against DuckDB SQL and polars
//! doing the same group-bys on the same Parquet files (and pm4py's DFG on request).

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use revlake::lake::{DatasetRef, Lake, WorkspaceId};
use revlake::mining::{self, MineOptions, MiningConfig};
use revlake::project::Project;

/// Options of `revlake mine --bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Benchmark: do not run the peers (DuckDB, polars).
    #[arg(long, requires = "bench")]
    no_peers: bool,
    /// Benchmark: also time pm4py's discover_dfg on the same history.
    #[arg(long, requires = "bench")]
    pm4py: bool,
    /// Benchmark: runs of each engine; the fastest is reported.
    #[arg(long, default_value_t = 1, requires = "bench", value_name = "N")]
    runs: u32,
}

/// The peers' job: the same contexts (champion, blocker, size vs median, lead source,
/// days-in-stage band), transition counts at every prefix level (ROLLUP), time-in-stage
/// count / mean / 21 quantiles at every level of the per-deal factors, and the DFG with
/// median days. Smoothing (cheap, on the aggregates) is left out of the peers.
const DUCKDB: &str = r#"
import sys, json, time, duckdb
spec = json.load(open(sys.argv[1]))
lst = lambda fs: "[" + ",".join("'" + f.replace("'", "''") + "'" for f in fs) + "]"
qs = ", ".join(str(i / 20) for i in range(21))
t0 = time.perf_counter()
con = duckdb.connect()
con.execute(f"""
CREATE TEMP TABLE t AS
WITH d AS (SELECT id, CAST(amount_usd AS DOUBLE) AS amount_usd,
                  coalesce(nullif(lower(trim(lead_source)), ''), 'unknown') AS lead_source
           FROM read_parquet({lst(spec['deals'])})),
     med AS (SELECT median(amount_usd) AS m FROM d),
     roles AS (SELECT deal_id, bool_or(lower(role) = 'champion') AS champion,
                      bool_or(lower(role) = 'blocker') AS blocker
               FROM read_parquet({lst(spec['contacts'])}) GROUP BY deal_id),
     ctx AS (SELECT d.id, coalesce(r.champion, false) AS champion, coalesce(r.blocker, false) AS blocker,
                    CASE WHEN d.amount_usd IS NULL THEN 'unknown'
                         WHEN d.amount_usd < 0.5 * med.m THEN 'below'
                         WHEN d.amount_usd > 2 * med.m THEN 'above' ELSE 'at' END AS size,
                    d.lead_source
             FROM d CROSS JOIN med LEFT JOIN roles r ON r.deal_id = d.id)
SELECT h.from_stage, h.to_stage, h.duration_days, c.champion, c.blocker, c.size, c.lead_source,
       CASE WHEN h.duration_days IS NULL OR h.duration_days < 0 THEN 'unknown'
            WHEN h.duration_days <= 7 THEN '0-7' WHEN h.duration_days <= 30 THEN '8-30'
            WHEN h.duration_days <= 90 THEN '31-90' ELSE '90+' END AS stage_days
FROM read_parquet({lst(spec['history'])}) h LEFT JOIN ctx c ON c.id = h.deal_id
WHERE h.from_stage IS NOT NULL AND h.to_stage IS NOT NULL
""")
matrix = con.execute("""SELECT from_stage, to_stage, champion, blocker, size, lead_source, stage_days, count(*)
  FROM t GROUP BY from_stage, to_stage, ROLLUP(champion, blocker, size, lead_source, stage_days)""").fetchall()
durations = con.execute(f"""SELECT from_stage, champion, blocker, size, lead_source, count(*), avg(duration_days),
  quantile_cont(duration_days, [{qs}]) FROM t WHERE duration_days >= 0
  GROUP BY from_stage, ROLLUP(champion, blocker, size, lead_source)""").fetchall()
dfg = con.execute("SELECT from_stage, to_stage, count(*), median(duration_days) FROM t GROUP BY 1, 2").fetchall()
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss_mb": [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0] / 1024,
  "version": duckdb.__version__, "matrix_cells": len(matrix), "duration_rows": len(durations),
  "transitions": sum(r[2] for r in dfg)}))
"#;

const POLARS: &str = r#"
import sys, json, time, polars as pl
spec = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
d = pl.scan_parquet(spec['deals']).select(pl.col('id'), pl.col('amount_usd').cast(pl.Float64),
      pl.col('lead_source').str.strip_chars().str.to_lowercase().replace('', None).fill_null('unknown'))
m = d.select(pl.col('amount_usd').median()).collect().item()
roles = (pl.scan_parquet(spec['contacts']).select('deal_id', pl.col('role').str.to_lowercase())
         .group_by('deal_id').agg((pl.col('role') == 'champion').any().alias('champion'),
                                  (pl.col('role') == 'blocker').any().alias('blocker')))
a = pl.col('amount_usd')
ctx = (d.join(roles, left_on='id', right_on='deal_id', how='left')
       .with_columns(pl.col('champion').fill_null(False), pl.col('blocker').fill_null(False),
                     pl.when(a.is_null()).then(pl.lit('unknown')).when(a < 0.5 * m).then(pl.lit('below'))
                       .when(a > 2 * m).then(pl.lit('above')).otherwise(pl.lit('at')).alias('size')))
dd = pl.col('duration_days')
t = (pl.scan_parquet(spec['history']).select('deal_id', 'from_stage', 'to_stage', dd)
     .filter(pl.col('from_stage').is_not_null() & pl.col('to_stage').is_not_null())
     .join(ctx, left_on='deal_id', right_on='id', how='left')
     .with_columns(pl.when(dd.is_null() | (dd < 0)).then(pl.lit('unknown')).when(dd <= 7).then(pl.lit('0-7'))
                   .when(dd <= 30).then(pl.lit('8-30')).when(dd <= 90).then(pl.lit('31-90'))
                   .otherwise(pl.lit('90+')).alias('stage_days'))
     .collect())
factors = ['champion', 'blocker', 'size', 'lead_source', 'stage_days']
cells = sum(t.group_by(['from_stage', 'to_stage'] + factors[:k]).len().height for k in range(6))
timed = t.filter(dd >= 0)
qexprs = [dd.quantile(i / 20, 'linear').alias(f'q{i}') for i in range(21)]
rows = sum(timed.group_by(['from_stage'] + factors[:k]).agg(pl.len(), dd.mean(), *qexprs).height for k in range(5))
dfg = t.group_by(['from_stage', 'to_stage']).agg(pl.len().alias('n'), dd.median())
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss_mb": [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0] / 1024,
  "version": pl.__version__, "matrix_cells": cells, "duration_rows": rows, "transitions": int(dfg['n'].sum())}))
"#;

const PM4PY: &str = r#"
import sys, json, time, duckdb
spec = json.load(open(sys.argv[1]))
lst = lambda fs: "[" + ",".join("'" + f.replace("'", "''") + "'" for f in fs) + "]"
df = duckdb.sql(f"""SELECT deal_id, coalesce(to_stage, to_stage_raw) AS activity, transitioned_at, source_id
  FROM read_parquet({lst(spec['history'])}) ORDER BY deal_id, transitioned_at, source_id""").df()
import pm4py
t0 = time.perf_counter()
dfg, starts, ends = pm4py.discover_dfg(df, case_id_key='deal_id', activity_key='activity', timestamp_key='transitioned_at')
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss_mb": [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0] / 1024,
  "version": pm4py.__version__, "transitions": sum(dfg.values())}))
"#;

pub async fn run(
    lake: &Lake,
    project: &Project,
    config: &MiningConfig,
    workspace: Option<WorkspaceId>,
    options: BenchOptions,
) -> Result<ExitCode> {
    let runs = options.runs.max(1);
    let mine_options = MineOptions {
        workspace: workspace.clone(),
        as_of: None,
        dry_run: true,
    };
    println!("revlake mine --bench on {}", lake.url());
    let mut best: Option<(f64, f64, f64)> = None;
    let mut summary = None;
    for _ in 0..runs {
        let t = Instant::now();
        let outcome = mining::mine(lake, project, config, &mine_options).await?;
        let total = t.elapsed().as_secs_f64();
        if best.is_none_or(|b| total < b.0) {
            best = Some((total, outcome.load_seconds, outcome.mine_seconds));
        }
        summary = Some(outcome.results);
    }
    let results = summary.unwrap_or_default();
    if results.is_empty() {
        bail!("no stage history in this lake: build one with `revlake demo --deals N` first");
    }
    let transitions: u64 = results.iter().map(|r| r.summary.transitions).sum();
    let matrix_cells: usize = results.iter().map(|r| r.matrix.len()).sum();
    let (total, load, mine) = best.unwrap_or_default();
    let rss = super::bench::peak_rss_mb().unwrap_or(f64::NAN);
    println!(
        "  revlake {:>8.2}s  (read {:.2}s, mine {:.2}s)  peak RSS {:.0} MB  {} transitions, {} workspace(s), {} matrix rows",
        total,
        load,
        mine,
        rss,
        transitions,
        results.len(),
        matrix_cells
    );
    if options.no_peers && !options.pm4py {
        return Ok(ExitCode::SUCCESS);
    }
    if results.len() != 1 {
        bail!("the peers run on one workspace: pass --workspace");
    }
    let ws = WorkspaceId::new(&results[0].workspace)?;
    let spec = serde_json::json!({
        "history": files(lake, "staging.deal_stage_history", &ws).await?,
        "deals": files(lake, "staging.deals", &ws).await?,
        "contacts": files(lake, "staging.deal_contacts", &ws).await?,
    });
    let dir = tempfile::tempdir()?;
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let mut peers: Vec<(&str, &str)> = Vec::new();
    if !options.no_peers {
        peers.push(("duckdb", DUCKDB));
        peers.push(("polars", POLARS));
    }
    if options.pm4py {
        peers.push(("pm4py", PM4PY));
    }
    for (name, script) in peers {
        let mut fastest: Option<serde_json::Value> = None;
        for _ in 0..runs {
            match run_python(script, &spec_path) {
                Ok(v) => {
                    let s = v["seconds"].as_f64().unwrap_or(f64::MAX);
                    if fastest
                        .as_ref()
                        .is_none_or(|f| s < f["seconds"].as_f64().unwrap_or(f64::MAX))
                    {
                        fastest = Some(v);
                    }
                }
                Err(e) => {
                    println!("  {name:<7} skipped: {e:#}");
                    break;
                }
            }
        }
        let Some(v) = fastest else { continue };
        let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  {name:<7} {secs:>8.2}s  peak RSS {:.0} MB  ({} {}, {} transitions{}){}",
            v["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
            name,
            v["version"].as_str().unwrap_or("?"),
            v["transitions"],
            v["matrix_cells"]
                .as_u64()
                .map(|c| format!(", {c} count cells"))
                .unwrap_or_default(),
            if v["transitions"].as_u64() == Some(transitions) {
                String::new()
            } else {
                "  TRANSITION COUNTS DIFFER".to_string()
            }
        );
        if secs.is_finite() && secs > 0.0 {
            println!("          revlake takes {:.2}x {name}'s time", total / secs);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The live Parquet files of `dataset` for `workspace` (local paths).
async fn files(lake: &Lake, dataset: &str, ws: &WorkspaceId) -> Result<Vec<String>> {
    let dataset: DatasetRef = dataset.parse()?;
    let table = lake.load(&dataset, None).await?;
    let marker = format!("workspace_id={}/", ws.as_str());
    let uris: Vec<String> = table
        .get_file_uris()
        .with_context(|| format!("listing the files of {dataset}"))?
        .filter(|u| u.contains(&marker))
        .map(|u| u.strip_prefix("file://").unwrap_or(&u).to_string())
        .collect();
    if uris.is_empty() {
        bail!("{dataset} has no files for workspace {ws}");
    }
    Ok(uris)
}

fn run_python(script: &str, spec: &Path) -> Result<serde_json::Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(spec)
        .stdin(Stdio::null())
        .output()
        .context("running python3")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{}", err.lines().last().unwrap_or("failed"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no result line")?;
    Ok(serde_json::from_str(line)?)
}
