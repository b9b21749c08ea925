//! The BigQuery schema JSON `revlake export bigquery --plan` writes, for every shipped
//! staging and marts table, parsed by google-cloud-bigquery's own schema parser
//! (`SchemaField.from_api_repr`, `Client.schema_from_json`): names, types and modes must
//! round-trip, types and modes must be ones BigQuery knows.
//!
//! `.ci/run` installs google-cloud-bigquery (pinned) in a virtualenv and exports
//! `REVLAKE_BQ_PYTHON`; under CI (env `CI` set) a missing parser fails the test, elsewhere it
//! is skipped with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::RecordBatch;
use revlake::lake::{Lake, WriteMode};
use revlake::project::Project;

/// Reads each schema file given, checks it with the library's parser, prints `ok <n>` or
/// fails with the file and field at fault.
const CHECK: &str = r#"
import json, sys
from google.cloud import bigquery
from google.auth.credentials import AnonymousCredentials

TYPES = set(bigquery.enums.SqlTypeNames.__members__) | set(bigquery.enums.StandardSqlTypeNames.__members__)
MODES = {"NULLABLE", "REQUIRED", "REPEATED"}
client = bigquery.Client(project="revlake-test", credentials=AnonymousCredentials())

def shape(field):
    out = [field["name"], field["type"], field.get("mode", "NULLABLE")]
    if field.get("fields"):
        out.append([shape(f) for f in field["fields"]])
    return out

def check(path, fields, prefix=""):
    for f in fields:
        where = f"{path}: {prefix}{f['name']}"
        if f["type"] not in TYPES:
            sys.exit(f"{where}: type {f['type']} is not a BigQuery type")
        if f.get("mode", "NULLABLE") not in MODES:
            sys.exit(f"{where}: mode {f.get('mode')} is not a BigQuery mode")
        if f["type"] in ("RECORD", "STRUCT") and not f.get("fields"):
            sys.exit(f"{where}: a RECORD without fields")
        check(path, f.get("fields", []), prefix + f["name"] + ".")

n = 0
for path in sys.argv[1:]:
    raw = json.load(open(path))
    if not isinstance(raw, list) or not raw:
        sys.exit(f"{path}: not a non-empty list of fields")
    check(path, raw)
    parsed = [bigquery.SchemaField.from_api_repr(f) for f in raw]
    again = [shape(f.to_api_repr()) for f in parsed]
    if again != [shape(f) for f in raw]:
        sys.exit(f"{path}: from_api_repr does not round-trip:\n{again}\n{[shape(f) for f in raw]}")
    loaded = client.schema_from_json(path)
    if [shape(f.to_api_repr()) for f in loaded] != again:
        sys.exit(f"{path}: schema_from_json differs from from_api_repr")
    n += 1
print(f"ok {n}")
"#;

/// The Python with google-cloud-bigquery: `REVLAKE_BQ_PYTHON`, else python3 if it imports it;
/// under CI a missing one fails.
fn bigquery_python() -> Option<String> {
    let candidates = std::env::var("REVLAKE_BQ_PYTHON")
        .into_iter()
        .chain(["python3".to_string()]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import google.cloud.bigquery"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "google-cloud-bigquery is not importable (REVLAKE_BQ_PYTHON or python3) but CI is set: .ci/run installs it"
        );
    }
    eprintln!(
        "skipping the BigQuery schema check: `pip install google-cloud-bigquery==3.47.0` and set REVLAKE_BQ_PYTHON to that Python"
    );
    None
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A project with the shipped staging and marts schemas, a BigQuery target, and a lake with
/// one empty table per schema; returns the datasets.
async fn shipped_tables(dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    let mut datasets = Vec::new();
    for entry in std::fs::read_dir(repo().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("staging.") || name.starts_with("marts.") {
            std::fs::copy(&path, dir.join("schemas").join(&name)).unwrap();
            datasets.push(name.trim_end_matches(".toml").to_string());
        }
    }
    datasets.sort();
    std::fs::write(
        dir.join("pipelines/default.toml"),
        "lake = \"lake\"\n[exports.bq]\ntype = \"bigquery\"\nproject = \"acme-analytics\"\ndataset = \"revlake\"\nstage_url = \"gs://acme-exports/revlake/\"\n",
    )
    .unwrap();
    let project = Project::load(dir).unwrap();
    let lake = Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap();
    for d in &datasets {
        let dataset = d.parse().unwrap();
        let schema = project.schema(&dataset).unwrap();
        let arrow = schema.arrow_schema();
        lake.write(dataset)
            .with_schema(Some(schema))
            .with_mode(WriteMode::Overwrite)
            .with_batches(arrow.clone(), vec![RecordBatch::new_empty(arrow)])
            .await
            .unwrap();
    }
    datasets
}

#[tokio::test(flavor = "multi_thread")]
async fn bigquery_schema_json_of_every_shipped_table_parses_with_google_cloud_bigquery() {
    let Some(python) = bigquery_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    let datasets = shipped_tables(&root).await;
    assert!(datasets.len() >= 20, "{datasets:?}");
    let plan = dir.path().join("plan");
    let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(&root)
        .arg("--lake")
        .arg(root.join("lake"))
        .args([
            "export",
            "bigquery",
            "--select",
            "staging.*,marts.*",
            "--plan",
            "--output",
        ])
        .arg(&plan)
        .env_remove("REVLAKE_LAKE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<PathBuf> = datasets
        .iter()
        .map(|d| plan.join(format!("bigquery/{d}.schema.json")))
        .collect();
    for f in &files {
        assert!(f.is_file(), "no schema JSON at {}", f.display());
    }
    let check = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(stdout.trim(), format!("ok {}", datasets.len()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schema_check_catches_a_type_bigquery_does_not_have() {
    let Some(python) = bigquery_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.schema.json");
    std::fs::write(
        &bad,
        r#"[{"name": "amount", "type": "DECIMAL128", "mode": "NULLABLE"}]"#,
    )
    .unwrap();
    let check = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("amount") && stderr.contains("DECIMAL128"),
        "{stderr}"
    );
}
