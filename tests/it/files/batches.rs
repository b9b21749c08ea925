//! Import batches, rollback, merges and stage snapshots.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_rolls_back_to_the_version_before_it_and_refuses_when_written_after() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let v1 = dir.path().join("v1.csv");
    std::fs::write(&v1, "Id,Amount\nd1,1\nd2,2\n").unwrap();
    let v2 = dir.path().join("v2.csv");
    std::fs::write(&v2, "Id,Amount\nd1,10\nd3,30\nd4,40\n").unwrap();
    let first = import(&lake, &v1, "raw.crm_deals").await;
    let second = import(&lake, &v2, "raw.crm_deals").await;
    assert_eq!(first.version_before, None);
    assert_eq!(second.version_before, Some(first.version));

    // Rolling back the first batch would undo the second: refused, naming it.
    let err = rollback(&lake, &first.batch_id, false).await.unwrap_err();
    assert!(matches!(err, FileError::LaterWrites { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("import batch {}", second.batch_id)) && msg.contains("--force"),
        "{msg}"
    );

    let done = rollback(&lake, &second.batch_id, false).await.unwrap();
    assert_eq!(done.restored_to, first.version);
    assert!(done.version > second.version);
    let rows = query(
        &lake,
        &["raw.crm_deals"],
        "SELECT id, amount FROM raw_crm_deals ORDER BY id",
    )
    .await;
    assert_eq!(rows, ["d1,1", "d2,2"]);
    // The rolled-back version stays readable.
    let old = lake
        .load(
            &ds("raw.crm_deals"),
            Some(&revlake::lake::AsOf::Version(second.version)),
        )
        .await
        .unwrap();
    assert_eq!(old.version(), Some(second.version as u64));

    let batches = list_batches(&lake, &BatchFilter::default()).await.unwrap();
    let status = |id: &str| batches.iter().find(|b| b.batch_id == id).unwrap().clone();
    let b2 = status(&second.batch_id);
    assert_eq!(b2.status, BatchStatus::RolledBack);
    assert_eq!(b2.rollback_version, Some(done.version));
    assert!(b2.rolled_back_at.is_some() && b2.applied_at.is_some());
    assert_eq!(status(&first.batch_id).status, BatchStatus::Applied);
    let again = rollback(&lake, &second.batch_id, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("rolled back already"), "{again}");

    // The first batch is now the last write but one (the restore); --force undoes both.
    let err = rollback(&lake, &first.batch_id, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rollback of"), "{err}");
    let forced = rollback(&lake, &first.batch_id, true).await.unwrap();
    assert_eq!(forced.restored_to, 0);
    assert_eq!(
        query(
            &lake,
            &["raw.crm_deals"],
            "SELECT count(*) FROM raw_crm_deals"
        )
        .await,
        ["0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_counts_inserted_updated_and_unchanged_records() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let v1 = dir.path().join("v1.csv");
    std::fs::write(&v1, "Id,Amount\nd1,1\nd2,2\nd3,3\n").unwrap();
    let v2 = dir.path().join("v2.csv");
    std::fs::write(&v2, "Id,Amount\nd1,1\nd2,20\nd4,4\n").unwrap();
    let merge = |p: &Path| {
        import_file(&lake, p.display().to_string(), ws())
            .with_dataset(ds("raw.crm_deals"))
            .with_strategy(revlake::sources::file::ImportStrategy::Merge)
            .with_key(vec!["id".into()])
    };
    let first = merge(&v1).await.unwrap();
    assert_eq!((first.inserted, first.updated, first.unchanged), (3, 0, 0));
    let second = merge(&v2).await.unwrap();
    assert_eq!(
        (
            second.inserted,
            second.updated,
            second.unchanged,
            second.rows
        ),
        (1, 1, 1, 2)
    );
    let rows = query(
        &lake,
        &["raw.crm_deals"],
        "SELECT id, amount FROM raw_crm_deals ORDER BY id",
    )
    .await;
    assert_eq!(rows, ["d1,1", "d2,20", "d3,3", "d4,4"]);
    let batch = &list_batches(&lake, &BatchFilter::default()).await.unwrap()[0];
    assert_eq!(
        (batch.rows_inserted, batch.rows_updated, batch.rows_skipped),
        (Some(1), Some(1), Some(1))
    );
    // Another workspace's rows with the same ids are not touched by the merge.
    import_file(
        &lake,
        v1.display().to_string(),
        WorkspaceId::new("other").unwrap(),
    )
    .with_dataset(ds("raw.crm_deals"))
    .with_strategy(revlake::sources::file::ImportStrategy::Merge)
    .with_key(vec!["id".into()])
    .await
    .unwrap();
    let rows = query(
        &lake,
        &["raw.crm_deals"],
        "SELECT workspace_id, count(*) FROM raw_crm_deals GROUP BY workspace_id ORDER BY workspace_id",
    )
    .await;
    assert_eq!(rows, ["acme,4", "other,3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_snapshot_of_deals_records_the_stage_changes_it_brings() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let header = "Record ID,Deal Name,Deal Stage,Amount,Last Modified Date\n";
    let monday = dir.path().join("monday.csv");
    std::fs::write(
        &monday,
        format!(
            "{header}1,A,appointmentscheduled,10,2025-06-02 09:00\n2,B,qualifiedtobuy,20,2025-06-02 09:00\n3,C,contractsent,30,2025-06-02 09:00\n"
        ),
    )
    .unwrap();
    // A week later: deal 1 and deal 3 moved, deal 2 only changed its amount, deal 4 is new.
    let next = dir.path().join("next-monday.csv");
    std::fs::write(
        &next,
        format!(
            "{header}1,A,presentationscheduled,10,2025-06-05 14:30\n2,B,qualifiedtobuy,25,2025-06-06 08:00\n3,C,closedwon,30,2025-06-07 16:00\n4,D,appointmentscheduled,40,\n"
        ),
    )
    .unwrap();
    let hubspot = |p: &Path| {
        import_file(&lake, p.display().to_string(), ws()).with_object("hubspot.deals".to_string())
    };
    let first = hubspot(&monday).await.unwrap();
    assert_eq!(first.stage_changes, 3);
    let second = hubspot(&next).await.unwrap();
    assert_eq!(second.stage_changes, 3);
    let rows = query(
        &lake,
        &["raw.hubspot_stage_snapshots"],
        &format!(
            "SELECT deal_key, from_stage, to_stage, observed_at, batch_id = '{}' AS second FROM raw_hubspot_stage_snapshots ORDER BY second, deal_key",
            second.batch_id
        ),
    )
    .await;
    assert_eq!(
        rows[..3],
        [
            "1,,appointmentscheduled,2025-06-02T09:00:00Z,false",
            "2,,qualifiedtobuy,2025-06-02T09:00:00Z,false",
            "3,,contractsent,2025-06-02T09:00:00Z,false",
        ]
    );
    assert_eq!(
        rows[3..5],
        [
            "1,appointmentscheduled,presentationscheduled,2025-06-05T14:30:00Z,true",
            "3,contractsent,closedwon,2025-06-07T16:00:00Z,true",
        ]
    );
    // The new deal has no last-modified time: it was observed at the import.
    assert!(
        rows[5].starts_with("4,,appointmentscheduled,") && rows[5].ends_with(",true"),
        "{}",
        rows[5]
    );

    // Rolling the second import back removes the changes it recorded.
    rollback(&lake, &second.batch_id, false).await.unwrap();
    assert_eq!(
        query(
            &lake,
            &["raw.hubspot_stage_snapshots"],
            "SELECT count(*) FROM raw_hubspot_stage_snapshots"
        )
        .await,
        ["3"]
    );
}
