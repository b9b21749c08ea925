//! Product-analytics exports and warehouse unloads: Parquet part files (a folder or a pattern,
//! snappy and zstd, nested columns, timestamps, decimals) and gzipped NDJSON / CSV land through
//! the file path; a corrupt Parquet file or a truncated gzip stream fails naming the file and
//! commits nothing.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Int64Array, ListBuilder,
    RecordBatch, StringArray, StringBuilder, StructArray, TimestampMicrosecondArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use flate2::Compression as Gz;
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use revlake::sources::file::ImportStrategy;

use super::*;

/// Events `ids` as a batch of an unload: ids, a user id, a decimal amount, a UTC and a zoneless
/// (nanosecond) timestamp, a float, a flag, a date, a list and a struct.
fn events(ids: &[i64]) -> RecordBatch {
    let n = ids.len();
    let props_fields = Fields::from(vec![
        Field::new("plan", DataType::Utf8, true),
        Field::new("seats", DataType::Int64, true),
    ]);
    let mut tags = ListBuilder::new(StringBuilder::new());
    for id in ids {
        if id % 2 == 0 {
            tags.values().append_value("trial");
            tags.values().append_value(format!("t{id}"));
            tags.append(true);
        } else {
            tags.append(false);
        }
    }
    let props = StructArray::new(
        props_fields.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| if i % 2 == 0 { "pro" } else { "free" }),
            )) as ArrayRef,
            Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i * 10))),
        ],
        None,
    );
    let base = 1_735_810_200_000_000i64; // 2025-01-02T09:30:00Z in µs
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("e{i}")),
        )),
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| 1000 + i))),
        Arc::new(
            Decimal128Array::from_iter_values(
                ids.iter().map(|i| 123_456_789_012_345i128 + *i as i128),
            )
            .with_precision_and_scale(18, 2)
            .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                ids.iter().map(|i| base + i * 60_000_000 + 123_456),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(TimestampNanosecondArray::from_iter_values(
            ids.iter().map(|i| (base + i * 3_600_000_000) * 1000),
        )),
        Arc::new(Float32Array::from_iter_values(
            ids.iter().map(|i| *i as f32 + 0.5),
        )),
        Arc::new(BooleanArray::from_iter(
            ids.iter().map(|i| Some(i % 2 == 0)),
        )),
        Arc::new(Date32Array::from_iter_values(
            ids.iter().map(|i| 20_090 + *i as i32),
        )),
        Arc::new(tags.finish()),
        Arc::new(props),
    ];
    let schema = Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, true),
        Field::new("amount", DataType::Decimal128(18, 2), true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "loaded_at",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("score", DataType::Float32, true),
        Field::new("is_paid", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("props", DataType::Struct(props_fields), true),
    ]);
    assert_eq!(n, columns[0].len());
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// Writes `batch` as Parquet with `compression`, two rows per row group.
fn write_parquet(path: &Path, batch: &RecordBatch, compression: Compression) {
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(2))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

/// A Snowflake-style unload: three part files (snappy and zstd) and a `_SUCCESS` marker.
fn unload(dir: &Path) -> PathBuf {
    let folder = dir.join("unload");
    std::fs::create_dir_all(&folder).unwrap();
    write_parquet(
        &folder.join("data_0_0_0.snappy.parquet"),
        &events(&[1, 2, 3]),
        Compression::SNAPPY,
    );
    write_parquet(
        &folder.join("data_0_1_0.zstd.parquet"),
        &events(&[4, 5]),
        Compression::ZSTD(ZstdLevel::default()),
    );
    write_parquet(
        &folder.join("data_0_2_0.snappy.parquet"),
        &events(&[6]),
        Compression::SNAPPY,
    );
    std::fs::write(folder.join("_SUCCESS"), "").unwrap();
    folder
}

fn gzip(path: &Path, members: &[&str]) {
    let mut out = Vec::new();
    for m in members {
        let mut enc = GzEncoder::new(Vec::new(), Gz::default());
        enc.write_all(m.as_bytes()).unwrap();
        out.extend(enc.finish().unwrap());
    }
    std::fs::write(path, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_unload_folder_lands_as_one_batch_with_its_types() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let folder = unload(dir.path());
    let outcome = import(&lake, &folder, "raw.snowflake_events").await;
    assert_eq!(outcome.format, FileFormat::Parquet);
    assert_eq!(
        (outcome.records, outcome.rows, outcome.quarantined),
        (6, 6, 0)
    );
    assert_eq!(outcome.encoding, None);
    let cols = columns(&lake, "raw.snowflake_events").await;
    for expected in [
        "event_id Utf8",
        "user_id Int64",
        "amount Decimal128(18, 2)",
        "event_time Timestamp(µs, \"UTC\")",
        "loaded_at Timestamp(µs, \"UTC\")",
        "score Float64",
        "is_paid Boolean",
        "day Date32",
        "tags Utf8",
        "props Utf8",
        "source_data Utf8",
        "_source_record Int64",
    ] {
        assert!(
            cols.iter().any(|c| c == expected),
            "{expected} not in {cols:?}"
        );
    }
    let rows = query(
        &lake,
        &["raw.snowflake_events"],
        "SELECT event_id, user_id, amount, event_time, loaded_at, score, is_paid, day, tags, props, \
         _source_record, regexp_replace(_source_file, '.*/', '') \
         FROM raw_snowflake_events WHERE event_id IN ('e2', 'e5') ORDER BY event_id",
    )
    .await;
    assert_eq!(
        rows,
        [
            r#"e2,1002,1234567890123.47,2025-01-02T09:32:00.123456Z,2025-01-02T11:30:00Z,2.5,true,2025-01-04,["trial","t2"],{"plan":"pro","seats":20},2,data_0_0_0.snappy.parquet"#,
            r#"e5,1005,1234567890123.50,2025-01-02T09:35:00.123456Z,2025-01-02T14:30:00Z,5.5,false,2025-01-07,,{"plan":"free","seats":50},2,data_0_1_0.zstd.parquet"#,
        ]
    );
    // The whole record, nested values as JSON, stays in source_data.
    let data = query(
        &lake,
        &["raw.snowflake_events"],
        "SELECT source_data FROM raw_snowflake_events WHERE event_id = 'e5'",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(v["event_id"], "e5");
    assert_eq!(v["tags"], serde_json::Value::Null);
    assert_eq!(v["props"]["seats"], 50);
    assert_eq!(
        query(
            &lake,
            &["raw.snowflake_events"],
            "SELECT count(*), count(DISTINCT _source_file), count(DISTINCT _sync_id) FROM raw_snowflake_events"
        )
        .await,
        ["6,3,1"]
    );
    let batches = list_batches(
        &lake,
        &BatchFilter {
            dataset: Some(ds("raw.snowflake_events")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(batches.len(), 1, "one import batch for the whole unload");
    assert_eq!(batches[0].format, "parquet");

    // A pattern names the same parts; a merge of the same rows finds them unchanged.
    let pattern = folder.join("data_*.parquet").display().to_string();
    let again = import_file(&lake, pattern, ws())
        .with_dataset(ds("raw.snowflake_events"))
        .with_strategy(ImportStrategy::Merge)
        .with_key(vec!["event_id".into()])
        .await
        .unwrap();
    assert_eq!(
        (
            again.records,
            again.unchanged,
            again.inserted,
            again.updated
        ),
        (6, 6, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_file_is_told_by_its_magic_bytes_and_a_declared_type_quarantines_misfits() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    // BigQuery EXPORT DATA part names end in a number when the URI has no extension.
    let path = dir.path().join("000000000000");
    write_parquet(&path, &events(&[1, 2]), Compression::SNAPPY);
    let outcome = import(&lake, &path, "raw.bigquery_events").await;
    assert_eq!((outcome.format, outcome.rows), (FileFormat::Parquet, 2));

    // The table holds `event_id` as text; a new file whose `user_id` is text that is not a
    // number, landing in the table's Int64 column, quarantines that record.
    let schema = Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec!["e3", "e4"])),
            Arc::new(StringArray::from(vec!["1003", "n/a"])),
        ],
    )
    .unwrap();
    let path = dir.path().join("more.parquet");
    write_parquet(&path, &batch, Compression::SNAPPY);
    let outcome = import_file(&lake, path.display().to_string(), ws())
        .with_dataset(ds("raw.bigquery_events"))
        .with_strategy(ImportStrategy::Append)
        .await
        .unwrap();
    assert_eq!((outcome.rows, outcome.quarantined), (1, 1));
    let q = query(
        &lake,
        &["ops.quarantine"],
        "SELECT line, reason FROM ops_quarantine",
    )
    .await;
    assert_eq!(q, ["2,column `user_id`: `n/a` is not an integer"]);
}

/// Amplitude's export: per hour, gzipped NDJSON named `.json.gz`.
fn amplitude_events(hour: u32, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"event_type\":\"{}\",\"user_id\":\"u{i}\",\"event_time\":\"2025-01-02 {hour:02}:{:02}:00.123000\",\"event_properties\":{{\"plan\":\"pro\",\"seats\":{i}}},\"amplitude_id\":{}}}\n",
                if i % 2 == 0 { "page_view" } else { "signup" },
                i % 60,
                100 + i
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzipped_amplitude_ndjson_and_csv_land_like_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;

    let path = dir.path().join("123456_2025-01-02_9#0.json.gz");
    gzip(&path, &[&amplitude_events(9, 3)]);
    let outcome = import(&lake, &path, "raw.amplitude_events").await;
    assert_eq!(
        outcome.format,
        FileFormat::Ndjson,
        "NDJSON inside a .json.gz"
    );
    assert_eq!((outcome.rows, outcome.quarantined), (3, 0));
    let cols = columns(&lake, "raw.amplitude_events").await;
    for expected in [
        "event_type Utf8",
        "user_id Utf8",
        "event_time Timestamp(µs, \"UTC\")",
        "event_properties Utf8",
        "amplitude_id Int64",
    ] {
        assert!(
            cols.iter().any(|c| c == expected),
            "{expected} not in {cols:?}"
        );
    }
    let rows = query(
        &lake,
        &["raw.amplitude_events"],
        "SELECT event_type, user_id, event_time, event_properties, _source_record \
         FROM raw_amplitude_events ORDER BY user_id",
    )
    .await;
    assert_eq!(
        rows[1],
        r#"signup,u1,2025-01-02T09:01:00.123Z,{"plan":"pro","seats":1},2"#
    );

    // The hours of an export, unzipped into a folder, land as one batch.
    let hours = dir.path().join("amplitude");
    std::fs::create_dir_all(&hours).unwrap();
    for h in [9, 10, 11] {
        gzip(
            &hours.join(format!("123456_2025-01-02_{h}#0.json.gz")),
            &[&amplitude_events(h, 4)],
        );
    }
    let outcome = import(&lake, &hours, "raw.amplitude_events").await;
    assert_eq!((outcome.format, outcome.rows), (FileFormat::Ndjson, 12));

    // Gzipped CSV, written as two gzip members (as `cat a.gz b.gz` makes).
    let path = dir.path().join("mixpanel_export.csv.gz");
    gzip(
        &path,
        &[
            "event,distinct_id,time,mp_country_code\nSign Up,d1,1735810200,DE\n",
            "Purchase,d2,1735810260,FR\n",
        ],
    );
    let outcome = import(&lake, &path, "raw.mixpanel_events").await;
    assert_eq!(
        (outcome.format, outcome.rows, outcome.delimiter.as_deref()),
        (FileFormat::Csv, 2, Some(","))
    );
    assert_eq!(
        query(
            &lake,
            &["raw.mixpanel_events"],
            "SELECT event, distinct_id, time, mp_country_code FROM raw_mixpanel_events ORDER BY time",
        )
        .await,
        ["Sign Up,d1,1735810200,DE", "Purchase,d2,1735810260,FR"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_parquet_page_fails_naming_the_row_group_and_writes_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let good = dir.path().join("good.parquet");
    write_parquet(&good, &events(&[1, 2, 3]), Compression::SNAPPY);
    let first = import(&lake, &good, "raw.snowflake_events").await;

    // The footer is intact, the first page header is not.
    let mut bytes = std::fs::read(&good).unwrap();
    for b in &mut bytes[4..64] {
        *b = 0xff;
    }
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, &bytes).unwrap();
    let err = import_file(&lake, bad.display().to_string(), ws())
        .with_dataset(ds("raw.snowflake_events"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}: cannot read it as Parquet (row group 0 of 2",
            bad.display()
        )),
        "{msg}"
    );
    assert!(err.is_user_error());
    let table = lake.load(&ds("raw.snowflake_events"), None).await.unwrap();
    assert_eq!(
        table.version(),
        Some(first.version as u64),
        "no version written"
    );
}

#[test]
fn a_truncated_parquet_or_gzip_file_fails_from_the_command_line_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");

    // A folder of parts imports from the command line.
    let folder = unload(dir.path());
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            folder.to_str().unwrap(),
            "--dataset",
            "raw.snowflake_events",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("6 rows landed"),
        "{}",
        text(&out.stdout)
    );

    // A Parquet file cut short: its footer is gone.
    let whole = std::fs::read(folder.join("data_0_0_0.snappy.parquet")).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            cut.to_str().unwrap(),
            "--dataset",
            "raw.bigquery_events",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}: cannot read it as Parquet", cut.display())),
        "{err}"
    );
    assert!(
        !lake.join("raw/bigquery_events").exists(),
        "nothing is committed"
    );

    // A gzip stream cut short, past the first records.
    let events = amplitude_events(9, 2000);
    let path = dir.path().join("events.ndjson.gz");
    gzip(&path, &[&events]);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 200]).unwrap();
    let out = revlake(
        dir.path(),
        &lake,
        &[
            "import",
            path.to_str().unwrap(),
            "--dataset",
            "raw.amplitude_events",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot read {}: gzip data is truncated",
            path.display()
        )),
        "{err}"
    );
    assert!(
        !lake.join("raw/amplitude_events").exists(),
        "nothing is committed"
    );
}
