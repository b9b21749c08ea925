//! `revlake bench export`: synthetic staging exported to a local-folder stage with --plan, on a
//! small N (the 1M-deal figure is a release-build run, in BENCHMARKS.md).

use std::path::PathBuf;
use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .args(["bench", "export"])
        .args(args)
        .output()
        .expect("run revlake")
}

#[test]
fn bench_export_plans_staging_and_prints_files_bytes_and_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let out = bench(&["--deals", "3000", "--dir", &d]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("staging.deals           3000 rows"),
        "{stdout}"
    );
    assert!(
        stdout.contains("export --plan: 3800 rows, 3 files") && stdout.contains("MB/s"),
        "{stdout}"
    );
    let plan = dir.path().join("plan");
    let sql = std::fs::read_to_string(plan.join("snowflake/staging.deals.sql")).unwrap();
    assert!(
        sql.contains("PUT 'file://") && sql.contains("MERGE INTO"),
        "{sql}"
    );
    let files: Vec<_> = std::fs::read_dir(plan.join("files/_all/staging.deals"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1, "one version folder: {files:?}");

    // A folder that already holds a lake is refused, and left as it was.
    let again = bench(&["--deals", "10", "--dir", &d]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("pass an empty --dir"), "{stderr}");
    assert!(plan.join("snowflake/staging.deals.sql").is_file());
}
