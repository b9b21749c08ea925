use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use revlake::lake::{DatasetRef, Lake, WorkspaceId};
use revlake::sources::file::bench_data::{COLUMNS, write_deal_files};
use revlake::sources::file::{FileFormat, import_file};

use super::Global;

/// Benchmarks on generated data, against a peer tool where there is one.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake bench landing\n  revlake bench landing --records 200000 --dir /tmp/bench\n  revlake bench check --deals 1000000"
)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, clap::Subcommand)]
enum BenchWhat {
    Landing(LandingArgs),
    Check(super::bench_check::CheckBenchArgs),
    Export(super::bench_export::ExportBenchArgs),
    Models(super::bench_models::ModelsBenchArgs),
    Serve(super::bench_serve::ServeBenchArgs),
}

/// Time landing a deal-like NDJSON file and CSV file (15 columns) into a fresh local lake, and
/// DuckDB converting the same files to Parquet (`pip install duckdb`; skipped when missing).
///
/// Run it on a release build: `cargo run --release -- bench landing`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake bench landing\n  revlake bench landing --records 100000 --no-peer\n  revlake bench landing --dir /tmp/bench   # keeps the files and lakes"
)]
struct LandingArgs {
    /// Records in each file.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Write the files and lakes here, and keep them (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Do not run DuckDB.
    #[arg(long)]
    no_peer: bool,
}

pub async fn run(global: &Global, args: BenchArgs) -> Result<ExitCode> {
    match args.what {
        BenchWhat::Landing(a) => landing(a).await,
        BenchWhat::Check(a) => super::bench_check::run(&global.project()?, a).await,
        BenchWhat::Export(a) => super::bench_export::run(&global.project()?, a).await,
        BenchWhat::Models(a) => super::bench_models::run(global, a).await,
        BenchWhat::Serve(a) => super::bench_serve::run(global, a).await,
    }
}

/// One timed run.
struct Timing {
    format: &'static str,
    engine: &'static str,
    seconds: f64,
}

const DUCKDB_SCRIPT: &str = r#"
import sys, time, duckdb
src, fmt, out = sys.argv[1:4]
reader = "read_json_auto" if fmt == "ndjson" else "read_csv_auto"
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
con.execute(f"COPY (SELECT * FROM {reader}('{src}')) TO '{out}' (FORMAT PARQUET)")
print(f"seconds={time.perf_counter() - t}")
"#;

async fn landing(args: LandingArgs) -> Result<ExitCode> {
    let temp = tempfile::tempdir().context("creating a temporary folder")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    println!(
        "revlake bench landing: {} deal records, {} columns, in {}",
        args.records,
        COLUMNS.len(),
        dir.display()
    );
    let t = Instant::now();
    let records = args.records;
    let data_dir = dir.clone();
    let files = tokio::task::spawn_blocking(move || write_deal_files(&data_dir, records))
        .await?
        .context("writing the benchmark files")?;
    println!(
        "  files written in {:.1}s: deals.ndjson {:.1} MB, deals.csv {:.1} MB",
        t.elapsed().as_secs_f64(),
        mb(files.ndjson_bytes),
        mb(files.csv_bytes)
    );

    let peer = if args.no_peer {
        None
    } else {
        duckdb_available()
    };
    if !args.no_peer && peer.is_none() {
        println!(
            "  DuckDB (the peer) is not installed for python3: `pip install duckdb` to compare; skipped"
        );
    }

    let mut timings = Vec::new();
    for (format, path, bytes) in [
        (FileFormat::Ndjson, &files.ndjson, files.ndjson_bytes),
        (FileFormat::Csv, &files.csv, files.csv_bytes),
    ] {
        let name = format.as_str();
        let lake_dir = dir.join(format!("lake-{name}"));
        let _ = std::fs::remove_dir_all(&lake_dir);
        let lake = Lake::open(&lake_dir.display().to_string()).await?;
        let dataset: DatasetRef = "raw.bench_deals".parse()?;
        let t = Instant::now();
        let outcome = import_file(
            &lake,
            path.display().to_string(),
            WorkspaceId::new("bench")?,
        )
        .with_dataset(dataset)
        .with_format(format)
        .await
        .with_context(|| format!("landing {}", path.display()))?;
        let seconds = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            outcome.rows == args.records,
            "{name}: landed {} rows of {}",
            outcome.rows,
            args.records
        );
        println!(
            "  revlake {name:<6} {seconds:>7.2}s  {:>10.0} records/s  {:>6.1} MB/s  ({} rows, version {})",
            args.records as f64 / seconds,
            mb(bytes) / seconds,
            outcome.rows,
            outcome.version
        );
        timings.push(Timing {
            format: name,
            engine: "revlake",
            seconds,
        });
        if let Some(version) = &peer {
            let out = dir.join(format!("duckdb-{name}.parquet"));
            let seconds = run_duckdb(path, name, &out)?;
            println!(
                "  duckdb  {name:<6} {seconds:>7.2}s  {:>10.0} records/s  {:>6.1} MB/s  (DuckDB {version}, COPY ... TO parquet)",
                args.records as f64 / seconds,
                mb(bytes) / seconds
            );
            timings.push(Timing {
                format: name,
                engine: "duckdb",
                seconds,
            });
        }
    }
    if peer.is_some() {
        for format in ["ndjson", "csv"] {
            let time = |engine: &str| {
                timings
                    .iter()
                    .find(|t| t.format == format && t.engine == engine)
                    .map(|t| t.seconds)
            };
            if let (Some(r), Some(d)) = (time("revlake"), time("duckdb")) {
                println!("  {format}: revlake takes {:.2}x DuckDB's time", r / d);
            }
        }
    }
    if let Some(rss) = peak_rss_mb() {
        println!("  peak RSS of this process: {rss:.0} MB");
    }
    if args.dir.is_none() {
        drop(temp);
    }
    Ok(ExitCode::SUCCESS)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// DuckDB's version when python3 can import it.
fn duckdb_available() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Seconds DuckDB takes to convert `path` to Parquet (timed inside python, without startup).
fn run_duckdb(path: &Path, format: &str, out: &Path) -> Result<f64> {
    let _ = std::fs::remove_file(out);
    let result = Command::new("python3")
        .arg("-c")
        .arg(DUCKDB_SCRIPT)
        .arg(path)
        .arg(format)
        .arg(out)
        .output()
        .context("running python3 for DuckDB")?;
    anyhow::ensure!(
        result.status.success(),
        "DuckDB failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("seconds="))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("reading DuckDB's timing from `{stdout}`"))
}

/// The process's peak resident set (Linux), in MB.
pub(super) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
