//! `revlake bench models`: the model run (every model under transforms/, in-process, as
//! `revlake run --full-refresh --no-checks` runs it, writing Delta) timed against DuckDB running
//! the same SQL, translated mechanically ([`translate`]), over the same raw Parquet files, and
//! the two engines' outputs compared model by model.
//!
//! The DuckDB side is `scripts/duckdb_models.py` (embedded): revlake's UDFs are DuckDB macros
//! (`bench_models/duckdb_udfs.sql`), checked on sample calls against the Rust UDFs before
//! anything is timed; the raw tables are views over the live Parquet files of each Delta table
//! (declared columns the lake lacks read as null text, declared tables it lacks as empty); each
//! model is `CREATE TABLE .. AS` then `COPY .. TO` Parquet, in dependency order. Each side
//! reports its own peak RSS (VmHWM): this process for revlake, the Python process for DuckDB.

mod translate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use revlake::lake::{DatasetRef, Lake, Layer};
use revlake::project::{Materialization, Project};
use revlake::sql::models::{ModelDag, RunOptions, run_selected};
use revlake::sql::udf;
use serde_json::{Value, json};

use super::Global;
use super::bench::peak_rss_mb;

/// The DuckDB peer (run, check and udfs modes).
const SCRIPT: &str = include_str!("../../scripts/duckdb_models.py");

/// revlake's UDFs as DuckDB macros.
pub const UDF_MACROS: &str = include_str!("bench_models/duckdb_udfs.sql");

/// UDFs the peer implements in Python (a handicap for DuckDB), with why.
const PYTHON_UDFS: &str = "stripe_mrr (a JSON walk with per-item fallbacks), jaro_winkler (DuckDB's jaro_winkler_similarity compares bytes and differs in the last bit)";

/// DuckDB settings that make its semantics DataFusion's where the SQL text cannot.
const SETTINGS: &[&str] = &[
    "SET TimeZone = 'UTC'",
    "SET default_null_order = 'nulls_last_on_asc_first_on_desc'",
    "SET integer_division = true",
    "SET enable_progress_bar = false",
];

/// Time the SQL models against DuckDB running the same SQL over the same Parquet files.
///
/// revlake: every model under transforms/, in dependency order, independent ones at once, in
/// this process, as `revlake run --full-refresh --no-checks` builds them: this rewrites the
/// lake's staging and marts tables (a new Delta version each run; the result is the same).
/// DuckDB (python3 with `duckdb`): each model translated to DuckDB's dialect (`--keep-sql`
/// writes it), revlake's UDFs as macros, over the live Parquet files of the raw tables; each
/// model `CREATE TABLE AS` and `COPY TO` Parquet. Then both outputs are compared per model
/// (rows, distinct primary keys, and per column the non-null count and an order-independent
/// hash sum, or the sum of a float column): a model that differs fails the bench (exit 1).
///
/// Use a lake built by `revlake demo --deals N`; time it on a release build.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake --lake /tmp/lake demo --deals 100000\n  revlake --lake /tmp/lake bench models --runs 3\n  revlake --lake /tmp/lake bench models --keep-sql /tmp/duckdb-sql\n  revlake --lake /tmp/lake bench models --no-peers"
)]
pub struct ModelsBenchArgs {
    /// Runs of each engine; the fastest is reported.
    #[arg(long, default_value_t = 1, value_name = "N")]
    runs: u32,
    /// Time revlake only (no DuckDB, no agreement check).
    #[arg(long)]
    no_peers: bool,
    /// Write the translated SQL (one file per model, and the UDF macros) to this folder.
    #[arg(long, value_name = "DIR")]
    keep_sql: Option<PathBuf>,
}

/// Rows and seconds of each model revlake built.
type ModelTimes = Vec<(DatasetRef, u64, f64)>;

/// One model as both engines see it.
struct Bench {
    dataset: DatasetRef,
    view: bool,
    duckdb_sql: Option<String>,
}

pub async fn run(global: &Global, args: ModelsBenchArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let dag = ModelDag::load(&project)?;
    if dag.models.is_empty() {
        bail!(
            "no models under {}: nothing to time",
            project.transforms_dir().display()
        );
    }
    let translate_sql = !args.no_peers || args.keep_sql.is_some();
    let mut models = Vec::with_capacity(dag.models.len());
    for m in &dag.models {
        let duckdb_sql = if translate_sql {
            let path = m.path.display().to_string();
            Some(
                translate::translate(&m.sql, &path)
                    .with_context(|| format!("translating model {} to DuckDB", m.dataset))?,
            )
        } else {
            None
        };
        models.push(Bench {
            dataset: m.dataset.clone(),
            view: m.materialized == Materialization::View,
            duckdb_sql,
        });
    }
    if let Some(dir) = &args.keep_sql {
        keep_sql(dir, &models)?;
        println!("translated SQL written to {}", dir.display());
    }
    let peer = if args.no_peers {
        None
    } else {
        Some(duckdb_version()?)
    };
    if peer.is_some() && lake.url().scheme() != "file" {
        bail!(
            "the DuckDB peer reads local Parquet files: run on a local lake, not {}",
            lake.url()
        );
    }
    let runs = args.runs.max(1);
    println!(
        "revlake bench models on {} ({} models, best of {runs} run{})",
        lake.url(),
        models.len(),
        if runs == 1 { "" } else { "s" }
    );
    let work = tempfile::tempdir().context("creating a temporary folder")?;
    let script = work.path().join("duckdb_models.py");
    std::fs::write(&script, SCRIPT)?;

    if peer.is_some() {
        let checked = check_udfs(&script, work.path())?;
        println!(
            "  UDF macros: {checked} sample calls give the Rust UDFs' results (Python UDFs: {PYTHON_UDFS})"
        );
    }

    // revlake: the model run, as `revlake run --full-refresh --no-checks`.
    let options = RunOptions {
        full_refresh: true,
        ..RunOptions::default()
    };
    let mut best: Option<(f64, ModelTimes)> = None;
    for _ in 0..runs {
        let t = Instant::now();
        let done = run_selected(&lake, &project, &dag, &options, &mut |_| {})
            .await
            .context("running the models (revlake)")?;
        let seconds = t.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|b| seconds < b.0) {
            let per = done
                .iter()
                .map(|r| (r.dataset.clone(), r.outcome.rows, r.elapsed.as_secs_f64()))
                .collect();
            best = Some((seconds, per));
        }
    }
    let (revlake_seconds, revlake_models) = best.unwrap_or_default();
    let revlake_rss = peak_rss_mb().unwrap_or(f64::NAN);

    let Some(version) = peer else {
        print_table(&models, &revlake_models, None, &[]);
        println!(
            "  revlake {revlake_seconds:>8.2}s  peak RSS {revlake_rss:.0} MB  (every model, full refresh, no checks, Delta written)"
        );
        return Ok(ExitCode::SUCCESS);
    };

    // DuckDB: the same SQL over the same raw files.
    let out_dir = work.path().join("out");
    std::fs::create_dir_all(&out_dir)?;
    let spec = run_spec(&lake, &project, &dag, &models, &out_dir).await?;
    let spec_path = work.path().join("run.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let mut fastest: Option<Value> = None;
    for _ in 0..runs {
        let v = python(&script, "run", &spec_path).context("running the models (DuckDB)")?;
        let s = v["seconds"].as_f64().unwrap_or(f64::MAX);
        if fastest
            .as_ref()
            .is_none_or(|f| s < f["seconds"].as_f64().unwrap_or(f64::MAX))
        {
            fastest = Some(v);
        }
    }
    let duck = fastest.unwrap_or_default();

    // Agreement.
    let check_spec = check_spec(&lake, &project, &models, &out_dir).await?;
    let check_path = work.path().join("check.json");
    std::fs::write(&check_path, serde_json::to_vec(&check_spec)?)?;
    let fingerprints = python(&script, "check", &check_path).context("comparing the outputs")?;
    let mut verdicts: Vec<(String, Vec<String>)> = Vec::new();
    for m in fingerprints["models"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("?").to_string();
        verdicts.push((name, differences(&m["revlake"], &m["duckdb"])));
    }

    print_table(&models, &revlake_models, Some(&duck), &verdicts);
    let duck_seconds = duck["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "  revlake {revlake_seconds:>8.2}s  peak RSS {revlake_rss:>6.0} MB  (every model, full refresh, no checks, Delta written)"
    );
    println!(
        "  duckdb  {duck_seconds:>8.2}s  peak RSS {:>6.0} MB  (DuckDB {version}: CREATE TABLE AS, COPY TO Parquet)",
        duck["peak_rss_mb"].as_f64().unwrap_or(f64::NAN)
    );
    if duck_seconds.is_finite() && duck_seconds > 0.0 {
        println!(
            "  revlake takes {:.2}x DuckDB's time",
            revlake_seconds / duck_seconds
        );
    }
    let differing: Vec<&(String, Vec<String>)> =
        verdicts.iter().filter(|(_, d)| !d.is_empty()).collect();
    if differing.is_empty() {
        println!(
            "  agreement: all {} stored models match (rows, keys, every column)",
            verdicts.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (name, diffs) in &differing {
        println!("  DIFFERS {name}: {}", diffs.join("; "));
    }
    eprintln!(
        "error: {} model(s) differ between revlake and DuckDB: {}",
        differing.len(),
        differing
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::from(1))
}

fn keep_sql(dir: &Path, models: &[Bench]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("udfs.sql", UDF_MACROS)?;
    write("settings.sql", &format!("{};\n", SETTINGS.join(";\n")))?;
    for m in models {
        if let Some(sql) = &m.duckdb_sql {
            let kind = if m.view { "VIEW" } else { "TABLE" };
            write(
                &format!("{}.sql", m.dataset),
                &format!("CREATE {kind} {} AS\n{sql}\n", m.dataset),
            )?;
        }
    }
    Ok(())
}

fn print_table(
    models: &[Bench],
    revlake: &[(DatasetRef, u64, f64)],
    duck: Option<&Value>,
    verdicts: &[(String, Vec<String>)],
) {
    println!(
        "  {:<36} {:>10} {:>10} {:>10} {:>10}  agree",
        "model", "rows", "revlake s", "duckdb s", "ratio"
    );
    for m in models {
        let name = m.dataset.to_string();
        let r = revlake.iter().find(|r| r.0 == m.dataset);
        let d = duck.and_then(|d| {
            d["models"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["name"].as_str() == Some(name.as_str())))
        });
        let d_secs = d.and_then(|d| d["seconds"].as_f64());
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        let ratio = match (r.map(|r| r.2), d_secs) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".to_string(),
        };
        let agree = match verdicts.iter().find(|(n, _)| *n == name) {
            Some((_, d)) if d.is_empty() => "yes",
            Some(_) => "NO",
            None if m.view => "(view)",
            None => "-",
        };
        println!(
            "  {name:<36} {:>10} {:>10} {:>10} {ratio:>10}  {agree}",
            r.map_or_else(|| "-".to_string(), |r| r.1.to_string()),
            cell(r.map(|r| r.2)),
            cell(d_secs),
        );
    }
    println!("  (revlake runs independent models at once: its per-model times overlap)");
}

/// DuckDB's version for python3, or an error saying how to get it.
fn duckdb_version() -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .stderr(Stdio::null())
        .output()
        .context("running python3 (the DuckDB peer needs it)")?;
    if !out.status.success() {
        bail!(
            "DuckDB is not installed for python3: `pip install duckdb==2.0.0`, or pass --no-peers"
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs the peer script in `mode` on `spec`; its JSON line.
fn python(script: &Path, mode: &str, spec: &Path) -> Result<Value> {
    let out = Command::new("python3")
        .arg(script)
        .arg(mode)
        .arg(spec)
        .stdin(Stdio::null())
        .output()
        .context("running python3")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "the DuckDB peer failed: {}",
            err.lines().last().unwrap_or("no message")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the DuckDB peer printed no result")?;
    Ok(serde_json::from_str(line)?)
}

/// The live Parquet files of `dataset` (local paths) and whether they sit in `key=value`
/// partition folders.
async fn files(lake: &Lake, dataset: &DatasetRef) -> Result<(Vec<String>, bool)> {
    let table = lake.load(dataset, None).await?;
    let files: Vec<String> = table
        .get_file_uris()
        .with_context(|| format!("listing the files of {dataset}"))?
        .map(|u| u.strip_prefix("file://").unwrap_or(&u).to_string())
        .collect();
    let hive = files.iter().any(|f| {
        Path::new(f)
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|d| d.to_string_lossy().contains('='))
    });
    Ok((files, hive))
}

/// The run spec: settings, macros, the raw inputs, seeds and the translated models.
async fn run_spec(
    lake: &Lake,
    project: &Project,
    dag: &ModelDag,
    models: &[Bench],
    out_dir: &Path,
) -> Result<Value> {
    let built: BTreeSet<&DatasetRef> = dag.models.iter().map(|m| &m.dataset).collect();
    let inputs: BTreeSet<&DatasetRef> = dag
        .models
        .iter()
        .flat_map(|m| m.inputs.iter())
        .filter(|i| !built.contains(i))
        .collect();
    let existing = lake.datasets().await?;
    let mut tables = Vec::new();
    for input in inputs {
        let declared: Vec<&str> = dag
            .sources
            .iter()
            .find(|s| &s.dataset == input)
            .map(|s| s.all_columns())
            .unwrap_or_default();
        let (files, hive) = if existing.contains(input) {
            files(lake, input).await?
        } else {
            (Vec::new(), false)
        };
        if files.is_empty() && declared.is_empty() {
            bail!("{input} has no Parquet files and is not declared in transforms/sources.toml");
        }
        tables.push(
            json!({"name": input.to_string(), "files": files, "hive": hive, "columns": declared}),
        );
    }
    let mut seeds = Vec::new();
    if let Ok(entries) = std::fs::read_dir(project.seeds_dir()) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        paths.sort();
        for p in paths {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                seeds.push(
                    json!({"name": format!("seeds.{stem}"), "path": p.display().to_string()}),
                );
            }
        }
    }
    let mut schemas: Vec<&str> = Layer::ALL.iter().map(|l| l.as_str()).collect();
    schemas.push("seeds");
    let models: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "name": m.dataset.to_string(),
                "sql": m.duckdb_sql,
                "view": m.view,
                "out": out_dir.join(format!("{}.parquet", m.dataset)).display().to_string(),
            })
        })
        .collect();
    Ok(json!({
        "settings": SETTINGS,
        "macros": UDF_MACROS,
        "schemas": schemas,
        "tables": tables,
        "seeds": seeds,
        "models": models,
    }))
}

/// The check spec: per stored model, revlake's live files, DuckDB's output and the key.
async fn check_spec(
    lake: &Lake,
    project: &Project,
    models: &[Bench],
    out_dir: &Path,
) -> Result<Value> {
    let mut out = Vec::new();
    for m in models.iter().filter(|m| !m.view) {
        // (an empty model may have no files: the peer compares it as an empty relation)
        let (files, hive) = files(lake, &m.dataset).await?;
        let key = project
            .schema(&m.dataset)
            .map(|s| s.primary_key.clone())
            .unwrap_or_default();
        out.push(json!({
            "name": m.dataset.to_string(),
            "revlake_files": files,
            "hive": hive,
            "out": out_dir.join(format!("{}.parquet", m.dataset)).display().to_string(),
            "key": key,
        }));
    }
    Ok(json!({"settings": SETTINGS, "models": out}))
}

/// What differs between revlake's fingerprint `r` and DuckDB's `d` (empty: they agree).
fn differences(r: &Value, d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if r["rows"] != d["rows"] {
        out.push(format!(
            "rows {} (revlake) vs {} (DuckDB)",
            r["rows"], d["rows"]
        ));
    }
    if r["keys"] != d["keys"] {
        out.push(format!(
            "distinct primary keys {} vs {}",
            r["keys"], d["keys"]
        ));
    }
    let empty = serde_json::Map::new();
    let dc = d["columns"].as_object().unwrap_or(&empty);
    let mut columns = Vec::new();
    for (name, rc) in r["columns"].as_object().unwrap_or(&empty) {
        let Some(dcol) = dc.get(name) else {
            columns.push(format!("{name} (missing in DuckDB)"));
            continue;
        };
        let same = rc["count"] == dcol["count"]
            && match (rc["value"].as_f64(), dcol["value"].as_f64()) {
                (Some(a), Some(b)) if rc["kind"] == "float" => {
                    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
                }
                _ => rc["value"] == dcol["value"],
            };
        if !same {
            columns.push(name.clone());
        }
    }
    for name in dc.keys() {
        if !r["columns"]
            .as_object()
            .is_some_and(|c| c.contains_key(name))
        {
            columns.push(format!("{name} (missing in revlake)"));
        }
    }
    if !columns.is_empty() {
        out.push(format!("columns {}", columns.join(", ")));
    }
    out
}

/// Sample calls of every macro, with the Rust UDFs' results.
fn udf_cases() -> Vec<(String, Vec<Option<String>>, Value)> {
    let s = |v: &str| Some(v.to_string());
    let text = |v: Option<String>| v.map_or(Value::Null, Value::String);
    let mut cases = Vec::new();
    let domains = [
        "Jane.Doe@Acme.COM",
        "https://www.acme.com/about?x=1",
        "http://ACME.co.uk:8080",
        "  www.Acme.com.  ",
        "acme.com/contact?email=a@b.com",
        "https://user:secret@App.Acme.io:443/x#top",
        "mailto:jane@acme.com",
        "ACME.com:",
        "www2.acme.com",
        "www.com",
        "Müller.DE",
        "my_host.acme-corp.com",
        "",
        "acme",
        "jane@",
        "http://10.0.0.1/",
        "http://[::1]:80/",
        "acme..com",
        ".acme.com",
        "acme.com:http",
        "acme .com",
        "Jane Doe <jane@acme.com>",
        "https://",
        "\u{a0}acme.com\t",
    ];
    for d in domains {
        cases.push((
            "normalize_domain".into(),
            vec![s(d)],
            text(udf::normalize_domain(d)),
        ));
    }
    cases.push(("normalize_domain".into(), vec![None], Value::Null));
    let companies = [
        "The Acme Corp.",
        "ACME, Inc.",
        "Müller GmbH & Co. KG",
        "Zoë Ltd",
        "Acme Holdings Ltd",
        "Acme Pty. Ltd.",
        "Acme L.L.C.",
        "Acme A/S",
        "Procter & Gamble Co.",
        "AT&T Inc.",
        "Hewlett-Packard   Enterprise",
        "McDonald's Corporation",
        "  3M   Company ",
        "Company Inc.",
        "The",
        "The Co",
        "Théâtre du Soleil SARL",
        "ZOE\u{0308} AG",
        "Inc Design Co",
        "AB InBev SA/NV",
        "Tabasco SA",
        "& Co",
        "Smith & Co.",
        "",
        " - , / ",
    ];
    for c in companies {
        cases.push((
            "normalize_company".into(),
            vec![s(c)],
            text(udf::normalize_company(c)),
        ));
    }
    let pairs = [
        ("martha", "marhta"),
        ("dwayne", "duane"),
        ("dixon", "dicksonx"),
        ("acme", "acme inc"),
        ("acme", "acme"),
        ("abc", "xyz"),
        ("", ""),
        ("acme", ""),
        ("Acme", "acme"),
        ("muller", "müller"),
        ("westmark industries", "westmoor industries"),
        ("a", "b"),
        ("ab", "ba"),
    ];
    for (a, b) in pairs {
        cases.push((
            "jaro_winkler".into(),
            vec![s(a), s(b)],
            json!(udf::jaro_winkler(a, b)),
        ));
    }
    cases.push(("jaro_winkler".into(), vec![None, s("a")], Value::Null));
    let parts: [&[&str]; 4] = [
        &["w"],
        &["w", "salesforce"],
        &["w", "salesforce", "006A"],
        &["demo", "hubspot", "owner:Jessica Morgan", "x"],
    ];
    for p in parts {
        cases.push((
            format!("uuid5_{}", p.len()),
            p.iter().map(|x| s(x)).collect(),
            json!(udf::record_id(p).to_string()),
        ));
    }
    cases.push(("uuid5_2".into(), vec![s("w"), None], Value::Null));
    let json_cases = [
        (r#"{"crm":{"id":"001A"}}"#, "/crm/id"),
        (r#"["acme.com","acme.io"]"#, "/1"),
        (r#"{"n":2.5}"#, "/n"),
        (r#"{"n":1700000000}"#, "/n"),
        (r#"{"o":{"a":[1,2]}}"#, "/o"),
        (r#"{"z":null}"#, "/z"),
        (r#"{"b":true}"#, "/b"),
        ("not json", "/a"),
        (r#"{"a":1}"#, "/missing"),
    ];
    for (j, p) in json_cases {
        cases.push((
            "json_get".into(),
            vec![s(j), s(p)],
            text(udf::json_get(j, p)),
        ));
    }
    for c in ["usd", " JPY ", "krw", "EUR", "\u{212a}rw"] {
        cases.push((
            "minor_unit_scale".into(),
            vec![s(c)],
            json!(udf::minor_unit_scale(c)),
        ));
    }
    let items = [
        r#"{"data":[{"quantity":3,"price":{"unit_amount":1000,"recurring":{"interval":"month","interval_count":1}}},{"quantity":1,"price":{"unit_amount":120000,"recurring":{"interval":"year","interval_count":1}}}]}"#,
        r#"{"data":[{"plan":{"amount":5000,"interval":"week","interval_count":2}},{"price":{"unit_amount_decimal":"99.5","recurring":{"interval":"day"}}},{"price":{"unit_amount":7}}]}"#,
        "[]",
        "{}",
        "nope",
    ];
    for i in items {
        for c in ["usd", "jpy"] {
            cases.push((
                "stripe_mrr".into(),
                vec![s(i), s(c)],
                udf::stripe_mrr(i, c).map_or(Value::Null, |v| json!(v)),
            ));
        }
    }
    let days = [
        ("2025-01-03", "2025-01-10"),
        ("2025-01-10", "2025-01-03"),
        ("2025-01-04", "2025-01-05"),
        ("2025-01-05", "2025-01-04"),
        ("1969-12-27", "1970-01-08"),
    ];
    for (a, b) in days {
        let day = |d: &str| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map(|d| {
                    d.signed_duration_since(chrono::NaiveDate::default())
                        .num_days()
                })
                .unwrap_or_default()
        };
        cases.push((
            "business_days".into(),
            vec![s(a), s(b)],
            json!(udf::business_days(day(a), day(b))),
        ));
    }
    cases
}

/// Runs every sample call through the macros; an error lists the calls that differ.
fn check_udfs(script: &Path, dir: &Path) -> Result<usize> {
    let cases = udf_cases();
    let spec = json!({
        "settings": SETTINGS,
        "macros": UDF_MACROS,
        "cases": cases.iter().map(|(call, args, _)| json!({"call": call, "args": args})).collect::<Vec<_>>(),
    });
    let path = dir.join("udfs.json");
    std::fs::write(&path, serde_json::to_vec(&spec)?)?;
    let got = python(script, "udfs", &path).context("running the UDF macros on samples")?;
    let results = got["results"].as_array().cloned().unwrap_or_default();
    let mut wrong = Vec::new();
    for (i, (call, args, want)) in cases.iter().enumerate() {
        let mut have = results.get(i).cloned().unwrap_or(Value::Null);
        // Doubles come as their shortest text, parsed here exactly.
        if let Some(f) = have["float"].as_str().and_then(|f| f.parse::<f64>().ok()) {
            have = json!(f);
        }
        let same = match (want.as_f64(), have["float"].as_str()) {
            (Some(a), _) if have.is_number() => have.as_f64() == Some(a),
            _ => *want == have,
        };
        if !same {
            wrong.push(format!("{call}({args:?}): revlake {want}, DuckDB {have}"));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "the DuckDB UDF macros differ from revlake's UDFs on {} sample call(s):\n  {}",
            wrong.len(),
            wrong.join("\n  ")
        );
    }
    Ok(cases.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_model_translates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let project = Project::load(root).unwrap();
        let dag = ModelDag::load(&project).unwrap();
        assert!(dag.models.len() >= 10);
        for m in &dag.models {
            let sql = translate::translate(&m.sql, &m.path.display().to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            for gone in ["arrow_cast(", "regexp_match(", "btrim(", "uuid5("] {
                assert!(!sql.contains(gone), "{}: {gone} left in\n{sql}", m.dataset);
            }
        }
    }

    #[test]
    fn fingerprints_differ_by_rows_keys_and_columns_and_floats_have_a_tolerance() {
        let fp = |rows: u64, v: f64, h: &str| {
            json!({"rows": rows, "keys": rows, "columns": {
                "amount": {"kind": "float", "count": rows, "value": v},
                "name": {"kind": "exact", "count": rows, "value": h}}})
        };
        assert!(
            differences(&fp(3, 1.0 / 3.0, "7"), &fp(3, 0.333_333_333_333_333_4, "7")).is_empty()
        );
        let d = differences(&fp(3, 1.0, "7"), &fp(2, 1.5, "8")).join("; ");
        assert!(
            d.contains("rows 3 (revlake) vs 2 (DuckDB)") && d.contains("columns amount, name"),
            "{d}"
        );
    }

    #[test]
    fn sample_calls_cover_every_macro_the_models_use() {
        let calls: BTreeSet<String> = udf_cases().into_iter().map(|c| c.0).collect();
        for f in [
            "normalize_domain",
            "normalize_company",
            "jaro_winkler",
            "json_get",
            "minor_unit_scale",
            "stripe_mrr",
            "business_days",
            "uuid5_3",
        ] {
            assert!(calls.contains(f), "{f}");
        }
    }
}
