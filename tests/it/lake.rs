//! The lake: write modes, interrupted writes, time travel, schema enforcement. The scenario
//! functions take any lake, so the S3 tests run the very same checks.

use std::sync::Arc;

use revlake::lake::{AsOf, DatasetRef, Lake, LakeError, WorkspaceId, WriteMode};
use revlake::sql::{SessionOptions, SqlSession};

use crate::common::{arrow_schema, count, deals, deals_schema, failing_stream, memory_lake, rows};

pub async fn round_trip_through_every_write_mode(lake: &Lake) {
    let ds: DatasetRef = "staging.deals".parse().unwrap();
    let schema = deals_schema("staging.deals");
    let write = |mode: WriteMode, batch| {
        lake.write(ds.clone())
            .with_schema(Some(&schema))
            .with_mode(mode)
            .with_batches(arrow_schema(), vec![batch])
    };
    // Append twice.
    let v0 = write(
        WriteMode::Append,
        deals(&[("a", "1", "lead", 10.0), ("b", "9", "lead", 90.0)]),
    )
    .await
    .unwrap();
    assert_eq!(v0.rows, 2);
    let v1 = write(WriteMode::Append, deals(&[("a", "2", "demo", 20.0)]))
        .await
        .unwrap();
    assert_eq!(v1.version, v0.version + 1);
    assert_eq!(count(lake, "staging.deals").await, 3);

    // Merge: update a:1, insert a:3, leave the rest.
    write(
        WriteMode::Merge,
        deals(&[("a", "1", "proposal", 11.0), ("a", "3", "lead", 30.0)]),
    )
    .await
    .unwrap();
    let s = SqlSession::open(lake, &SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(
            &s,
            "SELECT workspace_id, id, stage, amount FROM staging.deals"
        )
        .await,
        [
            "a,1,proposal,11.0",
            "a,2,demo,20.0",
            "a,3,lead,30.0",
            "b,9,lead,90.0"
        ]
    );

    // Overwrite one workspace: b is untouched.
    write(
        WriteMode::OverwriteWorkspace(WorkspaceId::new("a").unwrap()),
        deals(&[("a", "7", "negotiation", 70.0)]),
    )
    .await
    .unwrap();
    let s = SqlSession::open(lake, &SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(&s, "SELECT workspace_id, id, stage FROM staging.deals").await,
        ["a,7,negotiation", "b,9,lead"]
    );

    // A workspace overwrite refuses rows of another workspace, and commits nothing.
    let before = lake.info(&ds).await.unwrap().version;
    let err = write(
        WriteMode::OverwriteWorkspace(WorkspaceId::new("a").unwrap()),
        deals(&[("b", "8", "lead", 1.0)]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LakeError::Delta { .. }), "{err}");
    assert_eq!(lake.info(&ds).await.unwrap().version, before);

    // Overwrite everything.
    let last = write(WriteMode::Overwrite, deals(&[("c", "1", "lead", 5.0)]))
        .await
        .unwrap();
    assert_eq!(count(lake, "staging.deals").await, 1);

    // Every earlier version is still readable.
    let old = lake
        .load(&ds, Some(&AsOf::Version(v0.version)))
        .await
        .unwrap();
    assert_eq!(old.version(), Some(v0.version as u64));
    let s = SqlSession::open(
        lake,
        &SessionOptions {
            as_of: Some(AsOf::Version(v1.version)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rows(&s, "SELECT count(*) FROM staging.deals").await, ["3"]);
    assert!(last.version > v1.version);
}

pub async fn an_interrupted_write_leaves_the_previous_version(lake: &Lake) {
    let ds: DatasetRef = "staging.deals".parse().unwrap();
    let schema = deals_schema("staging.deals");
    let committed = lake
        .write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(arrow_schema(), vec![deals(&[("a", "1", "lead", 1.0)])])
        .await
        .unwrap();
    for mode in [WriteMode::Append, WriteMode::Overwrite, WriteMode::Merge] {
        let err = lake
            .write(ds.clone())
            .with_schema(Some(&schema))
            .with_mode(mode.clone())
            .with_stream(failing_stream("a", 3))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("source connection reset"),
            "{mode:?}: {err}"
        );
        let info = lake.info(&ds).await.unwrap();
        assert_eq!(info.version, committed.version, "{mode:?}");
        assert_eq!(info.rows, 1, "{mode:?}");
    }
    // The table still takes writes afterwards.
    let next = lake
        .write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(arrow_schema(), vec![deals(&[("a", "2", "lead", 1.0)])])
        .await
        .unwrap();
    assert_eq!(next.version, committed.version + 1);
    assert_eq!(count(lake, "staging.deals").await, 2);
}

#[tokio::test]
async fn round_trip_through_each_write_mode_in_memory() {
    round_trip_through_every_write_mode(&memory_lake().await).await;
}

#[tokio::test]
async fn round_trip_through_each_write_mode_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
    round_trip_through_every_write_mode(&lake).await;
    // The layout is <lake>/<layer>/<table>/ with workspace partitions.
    assert!(dir.path().join("staging/deals/_delta_log").is_dir());
    assert!(dir.path().join("staging/deals/workspace_id=c").is_dir());
}

#[tokio::test]
async fn a_write_failing_midway_leaves_the_table_at_its_previous_version() {
    an_interrupted_write_leaves_the_previous_version(&memory_lake().await).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
    an_interrupted_write_leaves_the_previous_version(&lake).await;
}

#[tokio::test]
async fn time_travel_by_timestamp_sees_what_was_committed_then() {
    let lake = memory_lake().await;
    let ds: DatasetRef = "staging.deals".parse().unwrap();
    let schema = deals_schema("staging.deals");
    let before_any = chrono::Utc::now() - chrono::Duration::seconds(5);
    lake.write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(arrow_schema(), vec![deals(&[("a", "1", "lead", 1.0)])])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    lake.write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(arrow_schema(), vec![deals(&[("a", "2", "lead", 1.0)])])
        .await
        .unwrap();
    let s = SqlSession::open(
        &lake,
        &SessionOptions {
            as_of: Some(AsOf::Timestamp(between)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rows(&s, "SELECT id FROM staging.deals").await, ["1"]);
    let err = lake
        .load(&ds, Some(&AsOf::Timestamp(before_any)))
        .await
        .unwrap_err();
    assert!(matches!(err, LakeError::NoVersionAtTime { .. }), "{err}");
    let err = lake.load(&ds, Some(&AsOf::Version(99))).await.unwrap_err();
    assert!(
        err.to_string().contains("no version 99 (latest is"),
        "{err}"
    );
}

#[tokio::test]
async fn writes_that_do_not_match_the_schema_are_refused() {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let lake = memory_lake().await;
    let schema = deals_schema("staging.deals");
    let ds: DatasetRef = "staging.deals".parse().unwrap();

    // amount as int64 instead of float64
    let wrong_type = Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        wrong_type.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["1"])),
            Arc::new(StringArray::from(vec!["lead"])),
            Arc::new(Int64Array::from(vec![5])),
        ],
    )
    .unwrap();
    let err = lake
        .write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(wrong_type, vec![batch])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column `amount` is int64 in the input but float64"),
        "{err}"
    );

    // a missing column
    let missing = Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        missing.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["1"])),
        ],
    )
    .unwrap();
    let err = lake
        .write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(missing.clone(), vec![batch.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lacks column(s) `stage`, `amount`"), "{err}");

    // an extra column: refused in staging, kept in raw
    let mut fields = arrow_schema().fields().to_vec();
    fields.push(Arc::new(Field::new("colour", DataType::Utf8, true)));
    let extra = Arc::new(Schema::new(fields));
    let base = deals(&[("a", "1", "lead", 1.0)]);
    let mut cols = base.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec!["red"])));
    let batch = RecordBatch::try_new(extra.clone(), cols).unwrap();
    let err = lake
        .write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(extra.clone(), vec![batch.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in the schema: `colour`"), "{err}");
    assert!(
        lake.try_load(&ds).await.unwrap().is_none() || count(&lake, "staging.deals").await == 0
    );

    let raw: DatasetRef = "raw.test_deals".parse().unwrap();
    let raw_schema = deals_schema("raw.test_deals");
    lake.write(raw.clone())
        .with_schema(Some(&raw_schema))
        .with_batches(extra, vec![batch])
        .await
        .unwrap();
    let s = SqlSession::open(&lake, &SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(rows(&s, "SELECT colour FROM raw.test_deals").await, ["red"]);

    // Without a schema file, an existing table's schema is the contract.
    lake.write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(arrow_schema(), vec![deals(&[("a", "1", "lead", 1.0)])])
        .await
        .unwrap();
    let err = lake
        .write(ds.clone())
        .with_batches(missing, vec![batch_of_two_columns()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lacks column(s) `stage`, `amount`"), "{err}");
    assert_eq!(count(&lake, "staging.deals").await, 1);
}

fn batch_of_two_columns() -> arrow::array::RecordBatch {
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    arrow::array::RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("workspace_id", DataType::Utf8, false),
            Field::new("id", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["1"])),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn raw_tables_evolve_when_new_fields_appear() {
    use arrow::array::{RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let lake = memory_lake().await;
    let ds: DatasetRef = "raw.crm_deals".parse().unwrap();
    lake.write(ds.clone())
        .with_batches(arrow_schema(), vec![deals(&[("a", "1", "lead", 1.0)])])
        .await
        .unwrap();
    let mut fields = arrow_schema().fields().to_vec();
    fields.push(Arc::new(Field::new("region", DataType::Utf8, true)));
    let schema = Arc::new(Schema::new(fields));
    let mut cols = deals(&[("a", "2", "demo", 2.0)]).columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec!["emea"])));
    lake.write(ds.clone())
        .with_batches(
            schema.clone(),
            vec![RecordBatch::try_new(schema, cols).unwrap()],
        )
        .await
        .unwrap();
    let s = SqlSession::open(&lake, &SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(&s, "SELECT id, coalesce(region, '-') FROM raw.crm_deals").await,
        ["1,-", "2,emea"]
    );
}

#[tokio::test]
async fn merge_needs_a_primary_key() {
    let lake = memory_lake().await;
    let err = lake
        .write("raw.crm_deals".parse().unwrap())
        .with_mode(WriteMode::Merge)
        .with_batches(arrow_schema(), vec![deals(&[("a", "1", "lead", 1.0)])])
        .await
        .unwrap_err();
    assert!(matches!(err, LakeError::NoMergeKey { .. }), "{err}");
    // With an explicit key the merge upserts.
    for stage in ["lead", "demo"] {
        lake.write("raw.crm_deals".parse().unwrap())
            .with_mode(WriteMode::Merge)
            .with_merge_key(vec!["workspace_id".into(), "id".into()])
            .with_batches(arrow_schema(), vec![deals(&[("a", "1", stage, 1.0)])])
            .await
            .unwrap();
    }
    let s = SqlSession::open(&lake, &SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(&s, "SELECT id, stage FROM raw.crm_deals").await,
        ["1,demo"]
    );
}

#[tokio::test]
async fn an_unreachable_lake_names_its_url() {
    let err = Lake::open("ftp://example/lake")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ftp://example/lake") && err.contains("unsupported scheme"),
        "{err}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("lake");
    let err = Lake::open(under_a_file.to_str().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(under_a_file.to_str().unwrap()), "{err}");
}

#[tokio::test]
async fn tables_report_versions_rows_and_workspaces() {
    let lake = memory_lake().await;
    let schema = deals_schema("staging.deals");
    lake.write("staging.deals".parse().unwrap())
        .with_schema(Some(&schema))
        .with_batches(
            arrow_schema(),
            vec![deals(&[
                ("a", "1", "lead", 1.0),
                ("a", "2", "lead", 1.0),
                ("b", "1", "lead", 1.0),
            ])],
        )
        .await
        .unwrap();
    let datasets = lake.datasets().await.unwrap();
    assert_eq!(datasets, ["staging.deals".parse::<DatasetRef>().unwrap()]);
    let info = lake.info(&datasets[0]).await.unwrap();
    assert_eq!(info.rows, 3);
    assert!(info.files >= 2 && info.bytes > 0);
    assert!(info.last_commit.is_some());
    assert_eq!(info.workspaces.get("a"), Some(&2));
    assert_eq!(info.workspaces.get("b"), Some(&1));
}

#[tokio::test]
async fn a_streamed_merge_upserts_like_a_batch_merge() {
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    let lake = memory_lake().await;
    let ds: DatasetRef = "staging.deals".parse().unwrap();
    let schema = deals_schema("staging.deals");
    let stream = |rows: Vec<(&'static str, &'static str, &'static str, f64)>| {
        let batch = deals(&rows);
        Box::pin(RecordBatchStreamAdapter::new(
            arrow_schema(),
            futures::stream::iter(vec![Ok(batch)]),
        ))
    };
    lake.write(ds.clone())
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Merge)
        .with_stream(stream(vec![
            ("a", "1", "lead", 1.0),
            ("a", "2", "lead", 2.0),
        ]))
        .await
        .unwrap();
    let out = lake
        .write(ds.clone())
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Merge)
        .with_stream(stream(vec![
            ("a", "2", "demo", 20.0),
            ("a", "3", "lead", 3.0),
        ]))
        .await
        .unwrap();
    assert_eq!(out.rows, 2);
    let s = SqlSession::open(&lake, &SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(&s, "SELECT id, stage, amount FROM staging.deals").await,
        ["1,lead,1.0", "2,demo,20.0", "3,lead,3.0"]
    );
}

/// A table created by a write whose input had no NULL in a column the schema lets be NULL (a
/// model selecting a literal, say) still takes NULLs there later: the table is created with the
/// declared nullability, not the first input's.
#[tokio::test]
async fn a_new_table_takes_the_declared_nullability_not_the_first_inputs() {
    use arrow::array::{Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let lake = memory_lake().await;
    let ds: DatasetRef = "staging.deals".parse().unwrap();
    let schema = deals_schema("staging.deals");
    let strict = Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
    ]));
    let first = RecordBatch::try_new(
        strict.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["1"])),
            Arc::new(StringArray::from(vec!["lead"])),
            Arc::new(Float64Array::from(vec![1.0])),
        ],
    )
    .unwrap();
    lake.write(ds.clone())
        .with_schema(Some(&schema))
        .with_batches(strict, vec![first])
        .await
        .unwrap();
    let with_nulls = RecordBatch::try_new(
        arrow_schema(),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["2"])),
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(Float64Array::from(vec![None])),
        ],
    )
    .unwrap();
    lake.write(ds.clone())
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Append)
        .with_batches(arrow_schema(), vec![with_nulls])
        .await
        .unwrap();
    assert_eq!(count(&lake, "staging.deals").await, 2);
}
