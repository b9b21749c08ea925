//! `revlake bench models`: the model run against DuckDB on the same SQL and Parquet, on a small
//! generated lake; both engines must agree on every model, and a model the translation cannot
//! handle, or one whose results differ, is named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn revlake(project: &Path, lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(project)
        .arg("--lake")
        .arg(lake)
        .arg("-q")
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .output()
        .expect("run revlake")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether python3 has duckdb; under CI (env `CI` set) a missing duckdb fails the test.
fn duckdb_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("duckdb is not installed for python3 but CI is set: .ci/run installs it");
    }
    if !ok {
        eprintln!("skipping the DuckDB model bench: `pip install duckdb==2.0.0` to run it");
    }
    ok
}

/// A demo lake of 300 generated deals, built once for the tests of this file.
fn demo_lake() -> &'static Path {
    static LAKE: OnceLock<PathBuf> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep().join("lake");
        let out = revlake(&repo(), &dir, &["demo", "--deals", "300"]);
        assert!(out.status.success(), "demo failed: {:?}", text(&out));
        dir
    })
}

/// A project holding only `transforms/staging/<name>.sql`.
fn project_with_model(name: &str, sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("transforms/staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join(format!("{name}.sql")), sql).unwrap();
    dir
}

#[test]
fn both_engines_build_every_shipped_model_and_agree() {
    if !duckdb_available() {
        return;
    }
    let lake = demo_lake();
    let sql_dir = tempfile::tempdir().unwrap();
    let out = revlake(
        &repo(),
        lake,
        &[
            "bench",
            "models",
            "--runs",
            "1",
            "--keep-sql",
            sql_dir.path().to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("sample calls give the Rust UDFs' results"),
        "{stdout}"
    );
    assert!(stdout.contains("agreement: all"), "{stdout}");
    assert!(stdout.contains("revlake takes"), "{stdout}");
    // Every model of the project has a row, and agrees.
    let models: Vec<String> = ["staging", "marts"]
        .iter()
        .flat_map(|layer| {
            std::fs::read_dir(repo().join("transforms").join(layer))
                .unwrap()
                .map(move |e| {
                    let p = e.unwrap().path();
                    format!("{layer}.{}", p.file_stem().unwrap().to_string_lossy())
                })
        })
        .collect();
    assert!(models.len() >= 10);
    for m in &models {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{m} ")))
            .unwrap_or_else(|| panic!("no line for {m}:\n{stdout}"));
        assert!(line.trim_end().ends_with("yes"), "{line}");
        assert!(sql_dir.path().join(format!("{m}.sql")).is_file(), "{m}");
    }
    assert!(sql_dir.path().join("udfs.sql").is_file());
}

#[test]
fn a_model_the_translation_cannot_handle_is_named_with_file_and_line() {
    let project = project_with_model(
        "staged",
        "SELECT workspace_id,\n  stage_normalize('salesforce', stage_name) AS stage\nFROM raw.salesforce_opportunity",
    );
    let lake = tempfile::tempdir().unwrap();
    let out = revlake(project.path(), lake.path(), &["bench", "models"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("translating model staging.staged"),
        "{stderr}"
    );
    assert!(
        stderr.contains("staging/staged.sql:2: stage_normalize has no DuckDB translation"),
        "{stderr}"
    );
}

#[test]
fn a_model_whose_results_differ_fails_the_bench_naming_it() {
    if !duckdb_available() {
        return;
    }
    let lake = demo_lake();
    // random() is not the same in two engines: the float column's sums differ.
    let project = project_with_model(
        "noise",
        "SELECT workspace_id, CAST(id AS VARCHAR) AS id, random() AS r FROM raw.salesforce_account",
    );
    let out = revlake(project.path(), lake, &["bench", "models", "--runs", "1"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("DIFFERS staging.noise: columns r"),
        "{stdout}"
    );
    assert!(
        stderr.contains("differ between revlake and DuckDB: staging.noise"),
        "{stderr}"
    );
}
