//! Every format through one landing path: CSV, TSV, JSON, NDJSON, xlsx; nested JSON; sheets.

use super::xlsx::{X, xlsx};
use super::*;

/// The same three deals in every format.
fn write_every_format(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let csv = "Id,Name,Amount,CloseDate,CreatedDate,IsWon,Meta\n\
               d1,\"Acme, Inc.\",1200.5,2025-01-31,2025-01-02T09:30:00Z,true,\"{\"\"tier\"\":1}\"\n\
               d2,Globex,300,2025-02-28,2025-01-03T10:00:00Z,false,\n\
               d3,Initech,,2025-03-31,2025-01-04T11:15:00Z,false,\"{\"\"tier\"\":2}\"\n";
    let tsv = "Id\tName\tAmount\tCloseDate\tCreatedDate\tIsWon\tMeta\n\
               d1\tAcme, Inc.\t1200.5\t2025-01-31\t2025-01-02T09:30:00Z\ttrue\t{\"tier\":1}\n\
               d2\tGlobex\t300\t2025-02-28\t2025-01-03T10:00:00Z\tfalse\t\n\
               d3\tInitech\t\t2025-03-31\t2025-01-04T11:15:00Z\tfalse\t{\"tier\":2}\n"
        .to_string();
    let records = r#"[
  {"Id": "d1", "Name": "Acme, Inc.", "Amount": 1200.5, "CloseDate": "2025-01-31", "CreatedDate": "2025-01-02T09:30:00Z", "IsWon": true, "Meta": {"tier": 1}},
  {"Id": "d2", "Name": "Globex", "Amount": 300, "CloseDate": "2025-02-28", "CreatedDate": "2025-01-03T10:00:00Z", "IsWon": false, "Meta": null},
  {"Id": "d3", "Name": "Initech", "Amount": null, "CloseDate": "2025-03-31", "CreatedDate": "2025-01-04T11:15:00Z", "IsWon": false, "Meta": {"tier": 2}}
]"#;
    let wrapped = format!("{{\"totalSize\": 3, \"done\": true, \"records\": {records}}}");
    let ndjson: String = serde_json::from_str::<Vec<serde_json::Value>>(records)
        .unwrap()
        .iter()
        .map(|v| format!("{v}\n"))
        .collect();
    let files = [
        ("csv", "deals.csv", csv.to_string()),
        ("tsv", "deals.tsv", tsv),
        ("json", "deals.json", records.to_string()),
        ("wrapped", "wrapped.json", wrapped),
        ("ndjson", "deals.ndjson", ndjson),
    ];
    let mut out: Vec<(&'static str, PathBuf)> = files
        .into_iter()
        .map(|(tag, name, body)| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            (tag, p)
        })
        .collect();
    let path = dir.join("deals.xlsx");
    // 45688 = 2025-01-31; 45659.395833 ≈ 2025-01-02 09:30 (Excel serials).
    xlsx(
        &path,
        &[(
            "Deals",
            vec![
                vec![
                    X::S("Id"),
                    X::S("Name"),
                    X::S("Amount"),
                    X::S("CloseDate"),
                    X::S("CreatedDate"),
                    X::S("IsWon"),
                    X::S("Meta"),
                ],
                vec![
                    X::S("d1"),
                    X::S("Acme, Inc."),
                    X::N(1200.5),
                    X::D(45688.0),
                    X::S("2025-01-02T09:30:00Z"),
                    X::B(true),
                    X::S("{\"tier\":1}"),
                ],
                vec![
                    X::S("d2"),
                    X::S("Globex"),
                    X::N(300.0),
                    X::D(45716.0),
                    X::S("2025-01-03T10:00:00Z"),
                    X::B(false),
                    X::Empty,
                ],
                vec![
                    X::S("d3"),
                    X::S("Initech"),
                    X::Empty,
                    X::D(45747.0),
                    X::S("2025-01-04T11:15:00Z"),
                    X::B(false),
                    X::S("{\"tier\":2}"),
                ],
            ],
        )],
    );
    out.push(("xlsx", path));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_lands_the_same_typed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let mut results = Vec::new();
    for (tag, path) in write_every_format(dir.path()) {
        let dataset = format!("raw.fmt_{tag}");
        let outcome = import(&lake, &path, &dataset).await;
        assert_eq!((outcome.rows, outcome.quarantined), (3, 0), "{tag}");
        let cols = columns(&lake, &dataset).await;
        for expected in [
            "id Utf8",
            "name Utf8",
            "amount Float64",
            "close_date Date32",
            "created_date Timestamp(µs, \"UTC\")",
            "is_won Boolean",
            "meta Utf8",
        ] {
            assert!(
                cols.iter().any(|c| c == expected),
                "{tag}: {expected} not in {cols:?}"
            );
        }
        let rows = query(
            &lake,
            &[&dataset],
            &format!(
                "SELECT id, name, amount, close_date, created_date, is_won FROM raw_fmt_{tag} ORDER BY id"
            ),
        )
        .await;
        results.push((tag, rows));
    }
    let (_, first) = &results[0];
    assert_eq!(
        first,
        &[
            "d1,Acme, Inc.,1200.5,2025-01-31,2025-01-02T09:30:00Z,true",
            "d2,Globex,300.0,2025-02-28,2025-01-03T10:00:00Z,false",
            "d3,Initech,,2025-03-31,2025-01-04T11:15:00Z,false",
        ]
    );
    for (tag, rows) in &results {
        assert_eq!(rows, first, "{tag} differs from csv");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_json_lands_as_json_text_and_the_whole_record_stays_in_source_data() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let path = dir.path().join("deals.ndjson");
    std::fs::write(
        &path,
        "{\"id\": \"d1\", \"owner\": {\"name\": \"Ann\", \"teams\": [\"EU\"]}, \"tags\": [1, 2]}\n\n{\"id\": \"d2\", \"extra\": true}\n",
    )
    .unwrap();
    let outcome = import(&lake, &path, "raw.crm_deals").await;
    assert_eq!(outcome.rows, 2);
    let rows = query(
        &lake,
        &["raw.crm_deals"],
        "SELECT id, owner, tags, extra, source_data, _source_record FROM raw_crm_deals ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            r#"d1,{"name":"Ann","teams":["EU"]},[1,2],,{"id": "d1", "owner": {"name": "Ann", "teams": ["EU"]}, "tags": [1, 2]},1"#,
            r#"d2,,,true,{"id": "d2", "extra": true},3"#,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_is_chosen_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let path = dir.path().join("book.xlsx");
    xlsx(
        &path,
        &[
            ("Summary", vec![vec![X::S("Total")], vec![X::N(2.0)]]),
            (
                "Deals",
                vec![
                    vec![X::S("Id"), X::S("Amount")],
                    vec![X::S("d1"), X::N(1.0)],
                    vec![X::Empty, X::Empty],
                    vec![X::S("d2"), X::N(2.5)],
                ],
            ),
        ],
    );
    let outcome = import_file(&lake, path.display().to_string(), ws())
        .with_dataset(ds("raw.book_deals"))
        .with_sheet("Deals".to_string())
        .await
        .unwrap();
    assert_eq!(outcome.rows, 2);
    let rows = query(
        &lake,
        &["raw.book_deals"],
        "SELECT id, amount, _source_record FROM raw_book_deals ORDER BY id",
    )
    .await;
    assert_eq!(rows, ["d1,1.0,2", "d2,2.5,4"]);
    let err = import_file(&lake, path.display().to_string(), ws())
        .with_dataset(ds("raw.book_deals"))
        .with_sheet("Nope".to_string())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no sheet named `Nope`") && err.contains("Summary, Deals"),
        "{err}"
    );
}
