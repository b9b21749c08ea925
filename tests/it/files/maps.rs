//! Type-failure quarantine and vendor header maps.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_fit_the_table_type_are_quarantined_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let first = dir.path().join("first.csv");
    std::fs::write(&first, "Id,Amount,CloseDate\nd1,10.5,2025-01-31\n").unwrap();
    import(&lake, &first, "raw.crm_deals").await;
    // The table types amount as float64 and close_date as date: the second file's text
    // values do not fit and their records are quarantined, the others land.
    let second = dir.path().join("second.csv");
    std::fs::write(
        &second,
        "Id,Amount,CloseDate\nd1,11,2025-01-31\nd2,n/a,2025-02-01\nd3,7,soon\nd4,8\n",
    )
    .unwrap();
    let outcome = import_file(&lake, second.display().to_string(), ws())
        .with_dataset(ds("raw.crm_deals"))
        .with_strategy(revlake::sources::file::ImportStrategy::Append)
        .await
        .unwrap();
    assert_eq!((outcome.rows, outcome.quarantined), (1, 3));
    assert_eq!(outcome.skipped(), 3);
    let rows = query(
        &lake,
        &["ops.quarantine"],
        "SELECT dataset, file, line, reason, record FROM ops_quarantine ORDER BY line",
    )
    .await;
    let file = second.display().to_string();
    assert_eq!(
        rows,
        [
            format!("raw.crm_deals,{file},3,column `amount`: `n/a` is not a number,\"d2,n/a,2025-02-01\""),
            format!("raw.crm_deals,{file},4,column `close_date`: `soon` is not a date (YYYY-MM-DD),\"d3,7,soon\""),
            format!("raw.crm_deals,{file},5,\"expected 3 fields, found 2\",\"d4,8\""),
        ]
        .iter()
        .map(|r| r.replace('"', ""))
        .collect::<Vec<_>>()
    );
    let batches = list_batches(&lake, &BatchFilter::default()).await.unwrap();
    assert_eq!(batches[0].rows_quarantined, Some(3));
    assert_eq!(batches[0].rows_skipped, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_report_export_lands_the_columns_of_an_api_export() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let report = dir.path().join("Opportunities report.csv");
    std::fs::write(
        &report,
        "Opportunity ID,Opportunity Name,Account ID,Stage,Amount,Close Date,Opportunity Owner,Created Date,Renewal_Date__c\n\
         0061,Big deal,0011,Prospecting,100,2025-03-31,Ann Lee,2025-01-02T09:30:00.000Z,2026-03-31\n",
    )
    .unwrap();
    let outcome = import_file(&lake, report.display().to_string(), ws())
        .with_object("salesforce.Opportunity".to_string())
        .await
        .unwrap();
    assert_eq!(outcome.dataset, "raw.salesforce_opportunity");
    assert_eq!(outcome.object.as_deref(), Some("salesforce.Opportunity"));
    let report_columns = columns(&lake, "raw.salesforce_opportunity").await;
    for c in [
        "id Utf8",
        "name Utf8",
        "account_id Utf8",
        "stage_name Utf8",
        "amount Int64",
        "close_date Date32",
        "owner_name Utf8",
        "created_date Timestamp(µs, \"UTC\")",
        "renewal_date_c Date32",
    ] {
        assert!(
            report_columns.iter().any(|x| x == c),
            "{c} in {report_columns:?}"
        );
    }
    // An API-name export (Data Loader, `revlake generate`) lands in the same columns.
    let api = dir.path().join("Opportunity.csv");
    std::fs::write(
        &api,
        "Id,Name,AccountId,StageName,Amount,CloseDate,CreatedDate\n0062,Small deal,0011,Qualification,5,2025-04-30,2025-01-05T09:30:00.000Z\n",
    )
    .unwrap();
    import_file(&lake, api.display().to_string(), ws())
        .with_object("salesforce.Opportunity".to_string())
        .with_strategy(revlake::sources::file::ImportStrategy::Append)
        .await
        .unwrap();
    assert_eq!(
        columns(&lake, "raw.salesforce_opportunity").await,
        report_columns
    );
    let rows = query(
        &lake,
        &["raw.salesforce_opportunity"],
        "SELECT id, name, stage_name, close_date FROM raw_salesforce_opportunity ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            "0061,Big deal,Prospecting,2025-03-31",
            "0062,Small deal,Qualification,2025-04-30"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_export_lands_internal_names_with_stage_ids_and_a_user_map() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let path = dir.path().join("hubspot-deals.csv");
    std::fs::write(
        &path,
        "Record ID,Deal Name,Deal Stage,Pipeline,Amount,Close Date,Deal owner,Is Closed Won,\
         Date entered \"Closed Won (Sales Pipeline)\",Date exited \"Contract Sent (Sales Pipeline)\",\
         Date entered \"Won (Renewals)\",Renewal Term,Associated Company IDs\n\
         101,Renewal,Closed Won,Sales Pipeline,50,2025-05-01,Ann Lee,true,2025-05-01 10:00,2025-05-01 10:00,,12 months,9001;9002\n",
    )
    .unwrap();
    let map = dir.path().join("map.toml");
    std::fs::write(
        &map,
        "[columns]\n\"Renewal Term\" = \"renewal_term__c\"\n\n[stages]\n\"Won (Renewals)\" = \"1234567\"\n",
    )
    .unwrap();
    let outcome = import_file(&lake, path.display().to_string(), ws())
        .with_object("hubspot.deals".to_string())
        .with_map(map)
        .await
        .unwrap();
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let cols: Vec<String> = columns(&lake, "raw.hubspot_deals")
        .await
        .into_iter()
        .map(|c| c.split(' ').next().unwrap().to_string())
        .collect();
    for c in [
        "hs_object_id",
        "dealname",
        "dealstage",
        "pipeline",
        "amount",
        "closedate",
        "hubspot_owner_id",
        "hs_is_closed_won",
        "hs_v2_date_entered_closedwon",
        "hs_v2_date_exited_contractsent",
        "hs_v2_date_entered_1234567",
        "renewal_term_c",
        "associated_company_ids",
    ] {
        assert!(cols.iter().any(|x| x == c), "{c} in {cols:?}");
    }
    // Without the user map, the unknown pipeline's stage column passes through with a warning.
    let outcome = import_file(&lake, path.display().to_string(), ws())
        .with_object("hubspot.deals".to_string())
        .with_dataset(ds("raw.hubspot_deals_plain"))
        .await
        .unwrap();
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert!(
        outcome.warnings[0].contains("Won (Renewals)")
            && outcome.warnings[0].contains("date_entered_won_renewals"),
        "{:?}",
        outcome.warnings
    );
}

#[test]
fn the_demo_exports_land_with_vendor_api_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("org");
    let lake = dir.path().join("lake");
    let gen_out = revlake(
        dir.path(),
        &lake,
        &[
            "generate",
            "--deals",
            "60",
            "--seed",
            "5",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(gen_out.status.success(), "{}", text(&gen_out.stderr));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let lake = Lake::open(&lake.display().to_string()).await.unwrap();
        let landed = revlake::pipeline::land_exports(&lake, &out, &ws(), "demo-sync", &mut |_| {})
            .await
            .unwrap();
        let deals = landed
            .iter()
            .find(|o| o.dataset == "raw.hubspot_deals")
            .unwrap();
        assert_eq!(deals.object.as_deref(), Some("hubspot.deals"));
        let cols = columns(&lake, "raw.hubspot_deals").await;
        for c in [
            "hs_object_id Int64",
            "dealname Utf8",
            "hs_lastmodifieddate Timestamp(µs, \"UTC\")",
            "hs_v2_date_entered_closedwon Timestamp(µs, \"UTC\")",
        ] {
            assert!(cols.iter().any(|x| x == c), "{c} in {cols:?}");
        }
        let batches = list_batches(&lake, &BatchFilter::default()).await.unwrap();
        assert_eq!(batches.len(), landed.len());
        assert!(batches.iter().all(|b| b.status == BatchStatus::Applied));
    });
}
