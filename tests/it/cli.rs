//! The binary, run in temporary folders: exit codes, messages, help, and the demo end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn revlake(project: &Path, lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(project)
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .output()
        .expect("run revlake")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "sql", "tables", "generate", "import", "run", "dag", "demo", "sources", "connect", "sync",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}");
        let help = text(&out.stdout);
        assert!(
            help.contains("Examples:") && help.contains("revlake "),
            "{cmd}: {help}"
        );
    }
}

#[test]
fn invalid_sql_exits_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &["sql", "SELECT *\nFROM staging.deals WHERE amount > > 1"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid SQL") && err.contains("Line: 2, Column: 35"),
        "{err}"
    );
}

#[test]
fn writes_through_sql_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &["sql", "DROP TABLE staging.deals"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_schema_file_is_named_with_its_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
    std::fs::write(
        dir.path().join("schemas/staging.deals.toml"),
        "[[columns]]\nname = \"workspace_id\"\ntype = \"string\"\n[[columns]]\nname = \"amount\"\ntype = \"money\"\n",
    )
    .unwrap();
    let out = revlake(dir.path(), &dir.path().join("lake"), &["tables"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("staging.deals.toml") && err.contains("`amount`") && err.contains("money"),
        "{err}"
    );
}

#[test]
fn the_demo_lands_exports_builds_staging_and_answers_sql() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = revlake(&repo(), &lake, &["demo", "--deals", "400", "--seed", "3"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("raw.salesforce_opportunity"), "{stdout}");
    assert!(stdout.contains("staging.deals"), "{stdout}");

    let out = revlake(&repo(), &lake, &["tables", "--json"]);
    assert!(out.status.success());
    let tables: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["dataset"].as_str().unwrap())
        .collect();
    for expected in [
        "raw.salesforce_opportunity",
        "raw.salesforce_opportunity_history",
        "raw.hubspot_deals",
        "staging.deals",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // Every generated deal is in staging with a normalized stage.
    let out = revlake(
        &repo(),
        &lake,
        &[
            "sql",
            "SELECT count(*) AS n, count(stage) AS mapped FROM staging.deals",
            "--workspace",
            "demo",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["n"], 400, "{v}");
    assert_eq!(v[0]["mapped"], 400, "{v}");

    // csv output to a file, written whole
    let csv = dir.path().join("out.csv");
    let out = revlake(
        &repo(),
        &lake,
        &[
            "sql",
            "SELECT source, count(*) AS n FROM staging.deals GROUP BY source ORDER BY source",
            "--format",
            "csv",
            "--output",
            csv.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = std::fs::read_to_string(&csv).unwrap();
    assert!(body.starts_with("source,n\nhubspot,"), "{body}");
}

/// A CSV of `rows` deals with an id, a stage and an amount.
fn big_csv(path: &Path, rows: usize, tag: &str) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "Id,StageName,Amount,Note").unwrap();
    for i in 0..rows {
        writeln!(
            f,
            "{tag}{i:08},Prospecting,{}.5,\"a note, with a comma\"",
            i % 1000
        )
        .unwrap();
    }
}

#[test]
fn an_import_killed_at_any_moment_leaves_the_old_or_the_new_version_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let small = dir.path().join("small.csv");
    big_csv(&small, 1_000, "old");
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            small.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let big = dir.path().join("big.csv");
    big_csv(&big, 400_000, "new");
    for delay_ms in [150u64, 600, 1500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_revlake"))
            .arg("--project")
            .arg(dir.path())
            .arg("--lake")
            .arg(&lake)
            .args([
                "-q",
                "import",
                big.to_str().unwrap(),
                "--dataset",
                "raw.crm_deals",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL: no cleanup runs
        let _ = child.wait();
        let out = revlake(
            dir.path(),
            &lake,
            &[
                "sql",
                "SELECT count(*) AS n, sum(CASE WHEN id LIKE 'old%' THEN 1 ELSE 0 END) AS old FROM raw.crm_deals",
                "--format",
                "csv",
            ],
        );
        assert!(
            out.status.success(),
            "after kill at {delay_ms} ms: {}",
            text(&out.stderr)
        );
        let body = text(&out.stdout);
        let line = body.lines().nth(1).unwrap().to_string();
        assert!(
            line == "1000,1000" || line == "400000,0",
            "after a kill at {delay_ms} ms the table holds a mix: {line}"
        );
    }
}

#[test]
fn records_that_cannot_land_are_quarantined_with_their_line_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let csv = dir.path().join("deals.csv");
    std::fs::write(
        &csv,
        "Id,StageName,Amount\nd1,Prospecting,10\nd2,Prospecting\nd3,\"Closed Won\",30\n",
    )
    .unwrap();
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            csv.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 rows landed") && text(&out.stdout).contains("1 quarantined"),
        "{}",
        text(&out.stdout)
    );
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "sql",
            "SELECT dataset, line, reason, record FROM ops.quarantine",
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = text(&out.stdout);
    assert!(
        body.contains("raw.crm_deals,3,\"expected 3 fields, found 2\",\"d2,Prospecting\""),
        "{body}"
    );
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "sql",
            "SELECT id FROM raw.crm_deals ORDER BY id",
            "--format",
            "csv",
        ],
    );
    assert_eq!(text(&out.stdout), "id\nd1\nd3\n");
}

#[test]
fn an_import_runs_the_checks_its_table_declares_and_a_critical_failure_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
    std::fs::write(
        dir.path().join("schemas/raw.crm_deals.toml"),
        r#"description = "Deals exported from the CRM."
primary_key = ["workspace_id", "id"]

[[columns]]
name = "workspace_id"
type = "string"
nullable = false

[[columns]]
name = "id"
type = "string"

[[columns]]
name = "stage_name"
type = "string"

[[columns]]
name = "amount"
type = "float64"

[[checks]]
check = "not_null"
column = "amount"
severity = "critical"

[[checks]]
check = "unique"
columns = ["id"]
severity = "high"
"#,
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "id,stage_name,amount\nd1,Prospecting,10\nd2,Prospecting,20\n",
    )
    .unwrap();
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            good.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("checks: 2 evaluated, 0 failed"),
        "{}",
        text(&out.stdout)
    );
    // A file with a missing amount lands (the batch can be rolled back) but fails the gate.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "id,stage_name,amount\nd3,Prospecting,\nd3,Closed Won,5\n",
    )
    .unwrap();
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            bad.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
            "--strategy",
            "append",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("raw.crm_deals.not_null(amount)"),
        "{stdout}"
    );
    assert!(stdout.contains("raw.crm_deals.unique(id)"), "{stdout}");
    assert!(
        text(&out.stderr).contains("a critical check failed"),
        "{}",
        text(&out.stderr)
    );
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "sql",
            "SELECT check_name, status FROM ops.quality_results ORDER BY check_name, status",
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = text(&out.stdout);
    assert!(body.contains("not_null(amount),fail"), "{body}");
    assert!(body.contains("not_null(amount),pass"), "{body}");
}
