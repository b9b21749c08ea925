//! Bad input, and the commands from the command line.

use super::*;

#[test]
fn a_malformed_ndjson_line_fails_naming_the_line_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let path = dir.path().join("deals.ndjson");
    std::fs::write(
        &path,
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3,, }\n{\"id\": 4}\n",
    )
    .unwrap();
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            path.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: malformed JSON at column", path.display())),
        "{err}"
    );
    assert!(!lake.join("raw/crm_deals").exists(), "nothing is committed");
    // The batch says why it failed.
    let out = revlake(dir.path(), &lake, &["import", "batches", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let batches: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(batches[0]["status"], "failed");
    assert!(
        batches[0]["error"]
            .as_str()
            .unwrap()
            .contains(":3: malformed JSON"),
        "{batches}"
    );
}

#[test]
fn an_xlsx_that_is_not_a_zip_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deals.xlsx");
    std::fs::write(&path, "Id,Name\n1,a\n").unwrap();
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &[
            "import",
            path.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: not an xlsx workbook: not a zip archive",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn an_unknown_object_is_refused_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deals.csv");
    std::fs::write(&path, "Id\n1\n").unwrap();
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &[
            "import",
            path.to_str().unwrap(),
            "--object",
            "salesforce.Opportunities",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown object `salesforce.Opportunities`")
            && err.contains("salesforce.Opportunity,")
            && err.contains("hubspot.deals"),
        "{err}"
    );
}

#[test]
fn a_file_without_a_known_extension_asks_for_a_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deals.dat");
    std::fs::write(&path, "Id\n1\n").unwrap();
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &[
            "import",
            path.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("use --format csv"),
        "{}",
        text(&out.stderr)
    );
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &[
            "import",
            path.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn the_import_commands_run_list_and_roll_back_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let path = dir.path().join("deals.csv");
    std::fs::write(&path, "Id,Amount\nd1,1\n").unwrap();
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            path.to_str().unwrap(),
            "--dataset",
            "raw.crm_deals",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let batch = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("batch "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let out = revlake(dir.path(), &lake, &["import", "batches"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&batch) && listing.contains("applied"),
        "{listing}"
    );
    let out = revlake(dir.path(), &lake, &["import", "rollback", &batch]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("raw.crm_deals restored to version 0"),
        "{}",
        text(&out.stdout)
    );
    let out = revlake(
        dir.path(),
        &lake,
        &["import", "batches", "--status", "rolled-back"],
    );
    assert!(text(&out.stdout).contains(&batch), "{}", text(&out.stdout));
}

#[test]
fn new_commands_have_help_with_an_example() {
    for cmd in [
        &["import", "--help"][..],
        &["import", "rollback", "--help"],
        &["import", "batches", "--help"],
        &["bench", "--help"],
        &["bench", "landing", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
            .args(cmd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd:?}");
        let help = text(&out.stdout);
        assert!(
            help.contains("Examples:") && help.contains("revlake "),
            "{cmd:?}: {help}"
        );
    }
}

#[test]
fn the_landing_benchmark_runs_on_a_small_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = revlake(
        dir.path(),
        &dir.path().join("lake"),
        &[
            "bench",
            "landing",
            "--records",
            "3000",
            "--no-peer",
            "--dir",
            dir.path().join("bench").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("revlake ndjson")
            && stdout.contains("revlake csv")
            && stdout.contains("records/s"),
        "{stdout}"
    );
}
