//! The shipped staging models (transforms/, schemas/, datasets/seeds/ of the repository) on small
//! hand-made raw tables with known answers: stage mappings per CRM, the multi-CRM account and
//! contact merge, every link tier and the internal filter, Pipedrive and snapshot-diff stage
//! history with trigger activities, a Salesforce-only lake; and on a generated demo org, the
//! counts the generator's truth gives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use revlake::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use revlake::project::Project;
use revlake::sql::models::{ModelDag, RunOptions, RunScope, run_selected};
use revlake::sql::{SessionOptions, SqlSession};

use crate::common::{memory_lake, rows};

const WS: &str = "w";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A copy of the repository's project (transforms, schemas, seeds) that a test may edit.
fn project_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["transforms", "schemas", "datasets/seeds"] {
        copy_dir(&repo().join(sub), &dir.path().join(sub));
    }
    dir
}

/// Lands `rows` (text cells, "" = null) as `dataset` in workspace `w`.
async fn land(lake: &Lake, dataset: &str, columns: &[&str], data: &[&[&str]]) {
    land_as(lake, dataset, columns, data, WriteMode::Append).await
}

/// [`land`] with a write mode (`OverwriteWorkspace`: the raw table as a re-sync leaves it).
async fn land_as(lake: &Lake, dataset: &str, columns: &[&str], data: &[&[&str]], mode: WriteMode) {
    // A test that names `source_data` among the columns gives each row's JSON itself.
    let own_data = columns.contains(&"source_data");
    let mut fields = vec![Field::new("workspace_id", DataType::Utf8, false)];
    fields.extend(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)));
    if !own_data {
        fields.push(Field::new("source_data", DataType::Utf8, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut arrays: Vec<Arc<dyn arrow::array::Array>> =
        vec![Arc::new(StringArray::from(vec![WS; data.len()]))];
    for i in 0..columns.len() {
        arrays.push(Arc::new(StringArray::from_iter(
            data.iter().map(|r| Some(r[i]).filter(|v| !v.is_empty())),
        )));
    }
    if !own_data {
        arrays.push(Arc::new(StringArray::from(vec!["{}"; data.len()])));
    }
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let ds: DatasetRef = dataset.parse().unwrap();
    lake.write(ds)
        .with_mode(mode)
        .with_batches(schema, vec![batch])
        .await
        .unwrap();
}

/// Runs every model of the project at `dir`.
async fn build(lake: &Lake, dir: &Path) {
    let project = Project::load(dir).unwrap();
    let dag = ModelDag::load(&project).unwrap();
    run_selected(lake, &project, &dag, &RunOptions::default(), &mut |_| {})
        .await
        .unwrap();
}

async fn query(lake: &Lake, sql: &str) -> Vec<String> {
    let s = SqlSession::open(lake, &SessionOptions::default())
        .await
        .unwrap();
    rows(&s, sql).await
}

/// The staging id of a source record.
async fn id_of(lake: &Lake, source: &str, source_id: &str) -> String {
    query(
        lake,
        &format!("SELECT uuid5('{WS}', '{source}', '{source_id}') AS id"),
    )
    .await
    .remove(0)
}

/// `lines` (comma-separated cells) with each cell that is one of `ids` replaced by its name.
fn named(ids: &[(&str, String)], lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| {
            l.split(',')
                .map(|v| {
                    ids.iter()
                        .find(|(_, id)| id == v)
                        .map_or(v.to_string(), |(n, _)| n.to_string())
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

const SF_ACCOUNT: &[&str] = &["id", "name", "website"];
const HS_COMPANY: &[&str] = &["hs_object_id", "name", "domain"];
const SF_OPP: &[&str] = &[
    "id",
    "name",
    "account_id",
    "stage_name",
    "amount",
    "created_date",
    "close_date",
    "is_closed",
    "is_won",
];

#[tokio::test]
async fn stages_map_per_source_and_pipedrive_closes_by_status() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_opportunity",
        SF_OPP,
        &[
            &[
                "006A",
                "a",
                "",
                "Negotiation/Review",
                "10",
                "2025-01-01T00:00:00Z",
                "2025-03-01",
                "false",
                "false",
            ],
            &[
                "006B",
                "b",
                "",
                "Id. Decision Makers",
                "10",
                "2025-01-01T00:00:00Z",
                "2025-03-01",
                "false",
                "false",
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_deals",
        &["hs_object_id", "dealname", "dealstage"],
        &[
            &["11", "h1", "contractsent"],
            &["12", "h2", "Qualified To Buy"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_stages",
        &["id", "name"],
        &[&["1", "Qualified"], &["3", "Demo Scheduled"]],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_deals",
        &["id", "title", "stage_id", "status", "add_time", "won_time"],
        &[
            &["21", "p1", "3", "open", "2025-01-01T00:00:00Z", ""],
            &[
                "22",
                "p2",
                "3",
                "won",
                "2025-01-01T00:00:00Z",
                "2025-02-01T00:00:00Z",
            ],
            &["23", "p3", "9", "open", "2025-01-01T00:00:00Z", ""],
        ],
    )
    .await;
    build(&lake, dir.path()).await;
    assert_eq!(
        query(
            &lake,
            "SELECT source, source_id, stage, stage_raw, is_closed, is_won FROM staging.deals"
        )
        .await,
        [
            "hubspot,11,negotiation,contractsent,,",
            "hubspot,12,qualification,Qualified To Buy,,",
            "pipedrive,21,demo,Demo Scheduled,false,false",
            "pipedrive,22,closed_won,Won,true,true",
            // an unknown stage id stays unmapped, raw kept (the quality check reports it)
            "pipedrive,23,,9,false,false",
            "salesforce,006A,negotiation,Negotiation/Review,false,false",
            "salesforce,006B,demo,Id. Decision Makers,false,false",
        ]
    );
}

#[tokio::test]
async fn accounts_merge_by_domain_then_fuzzy_name_then_the_manual_seed() {
    let dir = project_copy();
    // A manual match the matcher cannot find: different domains, different names.
    std::fs::write(
        dir.path().join("datasets/seeds/account_matches.csv"),
        "source,source_id,matches_source,matches_source_id,note\nhubspot,105,salesforce,001F,renamed after an acquisition\n",
    )
    .unwrap();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[
            &["001A", "Acme Corp", "https://www.acme.com/about"],
            &["001B", "Blue Harbour Health", ""],
            &["001C", "Zephyr Labs", ""],
            &["001D", "Orion Data", "orion.io"],
            &["001F", "Quartz Holdings", "quartz.com"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_companies",
        HS_COMPANY,
        &[
            &["101", "ACME", "acme.com"],
            &["102", "Blue Harbor Health Inc.", "bhh.com"],
            &["103", "Zepto Logistics", ""],
            &["104", "Orion Data", "orion-data.com"],
            &["105", "QZ Ltd", "qz.example"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_organizations",
        &["id", "name"],
        &[&["7", "Acme, Inc."]],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_deals",
        &[
            "hs_object_id",
            "dealname",
            "dealstage",
            "associated_company_ids",
        ],
        &[&["11", "acme renewal", "contractsent", "101"]],
    )
    .await;
    build(&lake, dir.path()).await;

    // The fuzzy pair below the threshold really is below it.
    let below = query(&lake, "SELECT jaro_winkler(normalize_company('Zephyr Labs'), normalize_company('Zepto Logistics')) < 0.9 AS below").await;
    assert_eq!(below, ["true"]);

    assert_eq!(
        query(
            &lake,
            "SELECT source, source_id, match_method FROM staging.account_sources"
        )
        .await,
        [
            "hubspot,101,exact_domain",
            "hubspot,102,fuzzy_name",
            "hubspot,103,none",
            // same name, two different known domains: two companies
            "hubspot,104,none",
            "hubspot,105,manual",
            // the winner of a three-system company is Salesforce, through HubSpot or directly
            "pipedrive,7,fuzzy_name",
            "salesforce,001A,none",
            "salesforce,001B,none",
            "salesforce,001C,none",
            "salesforce,001D,none",
            "salesforce,001F,none",
        ]
    );
    assert_eq!(
        query(
            &lake,
            "SELECT source_id, match_method, domain, external_ids FROM staging.accounts"
        )
        .await,
        [
            "001A,exact_domain,acme.com,{salesforce: 001A, hubspot: 101, pipedrive: 7}",
            "001B,fuzzy_name,bhh.com,{salesforce: 001B, hubspot: 102}",
            "001C,none,,{salesforce: 001C}",
            "001D,none,orion.io,{salesforce: 001D}",
            "001F,manual,quartz.com,{salesforce: 001F, hubspot: 105}",
            "103,none,,{hubspot: 103}",
            "104,none,orion-data.com,{hubspot: 104}",
        ]
    );
    // The HubSpot deal points at the merged (Salesforce) account.
    let acme = id_of(&lake, "salesforce", "001A").await;
    assert_eq!(
        query(&lake, "SELECT account_id FROM staging.deals").await,
        [acme]
    );
}

#[tokio::test]
async fn source_priority_picks_the_winner() {
    let dir = project_copy();
    std::fs::write(
        dir.path().join("datasets/seeds/source_priority.csv"),
        "entity,source,priority\naccounts,hubspot,1\naccounts,salesforce,2\ncontacts,salesforce,1\n",
    )
    .unwrap();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[&["001A", "Acme Corp", "acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_companies",
        HS_COMPANY,
        &[&["101", "ACME", "acme.com"]],
    )
    .await;
    build(&lake, dir.path()).await;
    assert_eq!(
        query(
            &lake,
            "SELECT source, source_id, name, match_method FROM staging.accounts"
        )
        .await,
        ["hubspot,101,ACME,exact_domain"]
    );
}

#[tokio::test]
async fn contacts_merge_by_lowercased_email_and_follow_the_merged_account() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[&["001A", "Acme Corp", "acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_companies",
        HS_COMPANY,
        &[&["101", "ACME", "acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_contact",
        &["id", "account_id", "first_name", "email", "title"],
        &[
            &["003A", "001A", "Ann", "ann@acme.com", ""],
            &["003B", "001A", "Bo", "", "CTO"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_contacts",
        &[
            "hs_object_id",
            "associatedcompanyid",
            "firstname",
            "email",
            "jobtitle",
        ],
        &[
            &["501", "101", "Ann", " Ann@ACME.com ", "VP Sales"],
            &["502", "101", "Cy", "cy@acme.com", ""],
        ],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_persons",
        &["id", "first_name", "emails"],
        &[&[
            "9",
            "Cy",
            r#"[{"label":"work","value":"cy@acme.com","primary":true}]"#,
        ]],
    )
    .await;
    build(&lake, dir.path()).await;
    let acme = id_of(&lake, "salesforce", "001A").await;
    assert_eq!(
        query(
            &lake,
            &format!(
                "SELECT source_id, email, title, match_method, external_ids, account_id = '{acme}' FROM staging.contacts"
            )
        )
        .await,
        [
            // the winner (Salesforce) keeps its fields; the title it lacks comes from HubSpot
            "003A,ann@acme.com,VP Sales,email,{salesforce: 003A, hubspot: 501},true",
            // no email: never merged
            "003B,,CTO,none,{salesforce: 003B},true",
            "502,cy@acme.com,,email,{hubspot: 502, pipedrive: 9},true",
        ]
    );
}

#[tokio::test]
async fn conversations_link_by_every_tier_and_internal_meetings_stay_unlinked() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[
            &["001A", "Acme Corp", "acme.com"],
            &["001B", "Beta Inc", "beta.com"],
            &["001C", "Gamma LLC", "gamma.com"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_contact",
        &["id", "account_id", "email"],
        &[&["003A", "001A", "ann@acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_user",
        &["id", "name", "email"],
        &[&["005A", "Rep One", "rep@northbeam.io"]],
    )
    .await;
    let open = |id: &'static str, account: &'static str| -> [&'static str; 9] {
        [
            id,
            id,
            account,
            "Prospecting",
            "10",
            "2024-01-01T00:00:00Z",
            "2026-12-31",
            "false",
            "false",
        ]
    };
    let (a1, c1, c2) = (
        open("006A1", "001A"),
        open("006C1", "001C"),
        open("006C2", "001C"),
    );
    land(
        &lake,
        "raw.salesforce_opportunity",
        SF_OPP,
        &[&a1, &c1, &c2],
    )
    .await;
    let p = |emails: &[&str]| -> String {
        let items: Vec<String> = emails
            .iter()
            .map(|e| format!(r#"{{"name":"x","email":"{e}","affiliation":"unknown"}}"#))
            .collect();
        format!("[{}]", items.join(","))
    };
    let calls = [
        (
            "c1",
            "Contract review",
            p(&["rep@northbeam.io", "bob@acme.com"]),
            "salesforce",
            "006A1",
            "",
        ),
        (
            "c2",
            "Intro",
            p(&["rep@northbeam.io", "ann@acme.com"]),
            "",
            "",
            "",
        ),
        (
            "c3",
            "Discovery",
            p(&["rep@northbeam.io", "new.person@beta.com"]),
            "",
            "",
            "",
        ),
        (
            "c4",
            "Cold call",
            p(&["rep@northbeam.io", "x@unknown.example"]),
            "",
            "",
            "",
        ),
        (
            "c5",
            "Forecast review",
            p(&["rep@northbeam.io", "vp@kitewire.com"]),
            "",
            "",
            "",
        ),
        ("c6", "Weekly pipeline sync", p(&[]), "", "", ""),
        (
            "c7",
            "Sync with Gamma",
            p(&["rep@northbeam.io", "cto@gamma.com"]),
            "salesforce",
            "",
            "001C",
        ),
    ];
    let rows: Vec<[&str; 8]> = calls
        .iter()
        .map(|c| {
            [
                c.0,
                c.1,
                "2025-06-02T15:00:00Z",
                "1800",
                c.2.as_str(),
                c.3,
                c.4,
                c.5,
            ]
        })
        .collect();
    let rows: Vec<&[&str]> = rows.iter().map(|r| r.as_slice()).collect();
    land(
        &lake,
        "raw.gong_calls",
        &[
            "id",
            "title",
            "started",
            "duration",
            "participants",
            "crm_source",
            "crm_deal_id",
            "crm_account_id",
        ],
        &rows,
    )
    .await;
    // A task on the account (no deal) and a task with only a contact.
    land(
        &lake,
        "raw.salesforce_task",
        &["id", "what_id", "who_id", "subject", "type", "created_date"],
        &[
            &["00TA", "001A", "", "Call", "Call", "2025-06-02T10:00:00Z"],
            &[
                "00TB",
                "",
                "003A",
                "Email: Follow up",
                "Email",
                "2025-06-02T10:00:00Z",
            ],
            &[
                "00TC",
                "006A1",
                "",
                "Team standup",
                "Call",
                "2025-06-02T10:00:00Z",
            ],
        ],
    )
    .await;
    build(&lake, dir.path()).await;
    let ids = [
        ("A", id_of(&lake, "salesforce", "001A").await),
        ("B", id_of(&lake, "salesforce", "001B").await),
        ("C", id_of(&lake, "salesforce", "001C").await),
        ("dealA", id_of(&lake, "salesforce", "006A1").await),
    ];
    let readable = |lines: Vec<String>| named(&ids, lines);
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT source_id, deal_id, account_id, contact_id IS NOT NULL, link_method, link_confidence, is_internal, internal_reason FROM staging.conversations"
            )
            .await
        ),
        [
            "c1,dealA,A,false,crm_association,1.0,false,",
            "c2,dealA,A,true,single_open_deal,0.7200000000000001,false,",
            "c3,,B,false,email_domain,0.7,false,",
            "c4,,,false,none,,false,",
            "c5,,,false,internal,,true,internal_participants",
            "c6,,,false,internal,,true,title:sync",
            // an internal-sounding title with an external participant is a customer call
            "c7,,C,false,crm_id,1.0,false,",
        ]
    );
    assert_eq!(
        query(
            &lake,
            "SELECT source_id, severity, likely_cause, open_deals_at_call FROM marts.conversations_without_deals"
        )
        .await,
        [
            "c3,high,new opportunity not logged,0",
            "c4,low,unknown domain: participants match no account,0",
            "c7,medium,deal association missing: several open deals at the account,2",
        ]
    );
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT source_id, deal_id, account_id, link_method, is_internal, internal_reason FROM staging.activities"
            )
            .await
        ),
        [
            "00TA,dealA,A,single_open_deal,false,",
            "00TB,dealA,A,single_open_deal,false,",
            "00TC,,,internal,true,title:standup",
        ]
    );
}

#[tokio::test]
async fn stage_history_from_pipedrive_changes_and_file_snapshots_with_durations_and_triggers() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.pipedrive_stages",
        &["id", "name"],
        &[
            &["1", "Qualified"],
            &["2", "Contact Made"],
            &["3", "Demo Scheduled"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_deals",
        &["id", "title", "stage_id", "status", "add_time", "won_time"],
        &[&[
            "21",
            "p1",
            "3",
            "won",
            "2025-01-01T00:00:00Z",
            "2025-01-11T00:00:00Z",
        ]],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_deal_stage_changes",
        &["id", "deal_id", "old_value", "new_value", "log_time"],
        &[
            &["901", "21", "1", "2", "2025-01-03T00:00:00Z"],
            &["902", "21", "2", "3", "2025-01-07T00:00:00Z"],
        ],
    )
    .await;
    // A HubSpot deals file without "Date entered" columns, imported three times: the snapshot
    // diffs are its only history. A Salesforce deal has native history: its snapshot is ignored.
    land(
        &lake,
        "raw.hubspot_deals",
        &["hs_object_id", "dealname", "dealstage"],
        &[&["31", "h", "Contract Sent"]],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_stage_snapshots",
        &[
            "deal_key",
            "from_stage",
            "to_stage",
            "observed_at",
            "batch_id",
        ],
        &[
            &["31", "", "Qualified To Buy", "2025-02-01T00:00:00Z", "b1"],
            &[
                "31",
                "Qualified To Buy",
                "Contract Sent",
                "2025-02-04T12:00:00Z",
                "b2",
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_opportunity",
        SF_OPP,
        &[&[
            "006A",
            "a",
            "",
            "Needs Analysis",
            "1",
            "2025-03-01T00:00:00Z",
            "2025-06-01",
            "false",
            "false",
        ]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_opportunity_history",
        &["id", "opportunity_id", "stage_name", "created_date"],
        &[
            &["008A", "006A", "Prospecting", "2025-03-01T00:00:00Z"],
            &["008B", "006A", "Prospecting", "2025-03-02T00:00:00Z"],
            &["008C", "006A", "Needs Analysis", "2025-03-05T00:00:00Z"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_stage_snapshots",
        &[
            "deal_key",
            "from_stage",
            "to_stage",
            "observed_at",
            "batch_id",
        ],
        &[&["006A", "", "Needs Analysis", "2025-03-09T00:00:00Z", "b0"]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_event",
        &["id", "what_id", "start_date_time", "subject"],
        &[
            &["00UA", "006A", "2025-03-03T00:00:00Z", "Intro meeting"],
            &["00UB", "006A", "2025-03-04T00:00:00Z", "Discovery meeting"],
            &["00UC", "006A", "2025-03-06T00:00:00Z", "Later meeting"],
        ],
    )
    .await;
    build(&lake, dir.path()).await;
    let trigger = id_of(&lake, "salesforce", "00UB").await;
    let got = query(
        &lake,
        "SELECT source, source_id, from_stage, to_stage, to_stage_raw, transitioned_at, duration_days, trigger_activity_id FROM staging.deal_stage_history",
    )
    .await;
    let got: Vec<String> = got
        .into_iter()
        .map(|l| l.replace(&trigger, "00UB"))
        .collect();
    assert_eq!(
        got,
        [
            "hubspot,snapshot:31:1738368000,,qualification,Qualified To Buy,2025-02-01T00:00:00Z,,",
            "hubspot,snapshot:31:1738670400,qualification,negotiation,Contract Sent,2025-02-04T12:00:00Z,3.5,",
            "pipedrive,21:created,,qualification,Qualified,2025-01-01T00:00:00Z,,",
            "pipedrive,21:won,demo,closed_won,Won,2025-01-11T00:00:00Z,4.0,",
            "pipedrive,901,qualification,discovery,Contact Made,2025-01-03T00:00:00Z,2.0,",
            "pipedrive,902,discovery,demo,Demo Scheduled,2025-01-07T00:00:00Z,4.0,",
            "salesforce,008A,,lead,Prospecting,2025-03-01T00:00:00Z,,",
            // 008B does not change the stage; the trigger is the meeting nearest before
            "salesforce,008C,lead,discovery,Needs Analysis,2025-03-05T00:00:00Z,4.0,00UB",
        ]
    );
}

#[tokio::test]
async fn a_salesforce_only_lake_builds_every_model() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[&["001A", "Acme Corp", "acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_opportunity",
        SF_OPP,
        &[&[
            "006A",
            "a",
            "001A",
            "Closed Won",
            "5",
            "2025-01-01T00:00:00Z",
            "2025-02-01",
            "true",
            "true",
        ]],
    )
    .await;
    let project = Project::load(dir.path()).unwrap();
    let dag = ModelDag::load(&project).unwrap();
    let mut built = Vec::new();
    run_selected(&lake, &project, &dag, &RunOptions::default(), &mut |r| {
        built.push(format!("{}={}", r.dataset, r.outcome.rows))
    })
    .await
    .unwrap();
    built.sort();
    assert_eq!(
        built,
        [
            "marts.conversations_without_deals=0",
            "staging.account_sources=1",
            "staging.accounts=1",
            "staging.activities=0",
            "staging.contact_sources=0",
            "staging.contacts=0",
            "staging.conversations=0",
            "staging.customer_accounts=0",
            "staging.deal_contacts=0",
            "staging.deal_stage_history=0",
            "staging.deals=1",
            "staging.invoices=0",
            "staging.product_events=0",
            "staging.quotas=0",
            "staging.subscriptions=0",
            "staging.tickets=0",
            "staging.users=0",
        ]
    );
    // A raw input nobody declared is still refused, naming file and line.
    std::fs::write(
        dir.path().join("transforms/staging/extra.sql"),
        "SELECT *\nFROM raw.nowhere",
    )
    .unwrap();
    let project = Project::load(dir.path()).unwrap();
    let dag = ModelDag::load(&project).unwrap();
    let e = run_selected(&lake, &project, &dag, &RunOptions::default(), &mut |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("extra.sql:2") && e.contains("unknown input `raw.nowhere`"),
        "{e}"
    );
}

#[tokio::test]
async fn the_demo_org_matches_the_generators_truth() {
    use revlake::generate::{GenerateConfig, generate};
    let out = tempfile::tempdir().unwrap();
    let config = GenerateConfig {
        deals: 2_000,
        seed: 7,
        ..GenerateConfig::default()
    };
    let summary = generate(&config, out.path(), &mut |_| {}).unwrap();
    let truth = summary.truth;
    let lake = memory_lake().await;
    let ws = WorkspaceId::new("demo").unwrap();
    revlake::pipeline::land_exports(&lake, out.path(), &ws, "sync-1", &mut |_| {})
        .await
        .unwrap();
    let project = Project::load(&repo()).unwrap();
    revlake::pipeline::transform(&lake, &project, Some(&ws), &mut |_| {})
        .await
        .unwrap();
    let one = |sql: &'static str| {
        let lake = lake.clone();
        async move { query(&lake, sql).await.remove(0).parse::<u64>().unwrap() }
    };
    assert_eq!(one("SELECT count(*) FROM staging.deals").await, truth.deals);
    assert_eq!(
        one("SELECT count(*) FROM staging.deals WHERE stage IS NULL").await,
        0,
        "every deal has a normalized stage"
    );
    assert_eq!(
        one("SELECT count(*) FROM staging.deals WHERE source = 'hubspot'").await,
        truth.hubspot.deals
    );
    assert_eq!(
        one(
            "WITH last AS (SELECT deal_id, to_stage, row_number() OVER (PARTITION BY deal_id ORDER BY transitioned_at DESC, source_id DESC) AS n FROM staging.deal_stage_history) \
             SELECT count(*) FROM staging.deals d LEFT JOIN last l ON l.deal_id = d.id AND l.n = 1 \
             WHERE l.to_stage IS NULL OR l.to_stage <> d.stage"
        )
        .await,
        0,
        "the last history row of every deal is its current stage"
    );
    // Salesforce keeps every move: one row per stage entered.
    assert_eq!(
        one("SELECT count(*) FROM staging.deal_stage_history WHERE source = 'salesforce' AND from_stage IS NOT NULL").await,
        truth.salesforce.stage_transitions
    );
    assert_eq!(
        one("SELECT count(*) FROM staging.account_sources").await,
        truth.salesforce.accounts + truth.hubspot.accounts
    );
    assert_eq!(
        one("SELECT count(*) FROM staging.account_sources WHERE match_method = 'exact_domain'")
            .await,
        truth.shared_domains
    );
    assert_eq!(
        one("SELECT count(*) FROM staging.accounts").await,
        truth.salesforce.accounts + truth.hubspot.accounts - truth.shared_domains,
        "one row per real company"
    );
    // The two CRMs' contacts never share an email in this org.
    assert_eq!(
        one("SELECT count(*) FROM staging.contacts").await,
        truth.salesforce.contacts + truth.hubspot.contacts
    );
    assert_eq!(
        one("SELECT count(*) FROM staging.activities").await,
        truth.files["salesforce/Task.csv"] + truth.files["salesforce/Event.csv"]
    );
    assert_eq!(
        one("SELECT count(*) FROM staging.users WHERE source = 'salesforce'").await,
        truth.salesforce.users
    );
    // HubSpot deals point at the merged accounts: none at a HubSpot record that lost a merge.
    assert_eq!(
        one("SELECT count(*) FROM staging.deals d LEFT JOIN staging.accounts a ON a.id = d.account_id WHERE a.id IS NULL").await,
        0
    );
}

#[tokio::test]
async fn billing_and_support_land_on_the_crm_accounts_with_mrr_in_usd() {
    let dir = project_copy();
    let lake = memory_lake().await;
    // Salesforce ids as Salesforce writes them (18 characters): Zendesk external ids match them.
    const ACME: &str = "001000000000001AAA";
    const GLOBEX: &str = "001000000000002AAA";
    const INITECH: &str = "001000000000003AAA";
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[
            &[ACME, "Acme", "acme.com"],
            &[GLOBEX, "Globex Corporation", "globex.com"],
            &[INITECH, "Initech", ""],
        ],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_contact",
        &["id", "account_id", "first_name", "email", "title"],
        &[&["003A", GLOBEX, "Hank", "hank@globex.com", ""]],
    )
    .await;
    let initech_meta = format!(r#"{{"salesforce_account_id":"{INITECH}"}}"#);
    land(
        &lake,
        "raw.stripe_customers",
        &["id", "email", "name", "metadata", "_deleted"],
        &[
            &["cus_1", "ap@acme.com", "Acme AP", "{}", "false"],
            &["cus_2", "ceo@gmail.com", "Bill", &initech_meta, "false"],
            &["cus_3", "x@gmail.com", "Nobody", "", "false"],
            &["cus_4", "ap@acme.com", "Acme (deleted)", "", "true"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.chargebee_customers",
        &["id", "email", "company", "_deleted"],
        &[&["cb_1", "b@globex-mail.com", "Globex Corp.", "false"]],
    )
    .await;
    land(
        &lake,
        "raw.zendesk_organizations",
        &["id", "name", "domain_names", "external_id"],
        &[
            &["100", "ACME Support", "[]", ACME],
            &["200", "Globex", r#"["globex.com"]"#, ""],
        ],
    )
    .await;
    // $50 a month × 2 seats; a trial; €1,200 a year (€100 a month at 1.08 USD).
    let monthly = r#"{"data":[{"quantity":2,"price":{"nickname":"Pro","unit_amount":5000,"recurring":{"interval":"month","interval_count":1}}}]}"#;
    let yearly = r#"{"data":[{"quantity":1,"price":{"product":"prod_X","unit_amount":120000,"recurring":{"interval":"year","interval_count":1}}}]}"#;
    land(
        &lake,
        "raw.stripe_subscriptions",
        &[
            "id",
            "customer",
            "status",
            "currency",
            "created",
            "current_period_end",
            "canceled_at",
            "items",
        ],
        &[
            &[
                "sub_1",
                "cus_1",
                "active",
                "usd",
                "2025-01-01T00:00:00Z",
                "2025-02-01T00:00:00Z",
                "",
                monthly,
            ],
            &[
                "sub_2",
                "cus_2",
                "trialing",
                "usd",
                "2025-01-05T00:00:00Z",
                "",
                "",
                monthly,
            ],
            &[
                "sub_3",
                "cus_3",
                "active",
                "eur",
                "2025-01-07T00:00:00Z",
                "",
                "",
                yearly,
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.chargebee_subscriptions",
        &[
            "id",
            "customer_id",
            "status",
            "currency_code",
            "mrr",
            "cancelled_at",
            "_deleted",
            "source_data",
        ],
        &[
            &[
                "cbs_1",
                "cb_1",
                "cancelled",
                "USD",
                "9900",
                "2025-03-01T00:00:00Z",
                "false",
                r#"{"subscription_items":[{"item_price_id":"enterprise-USD-monthly"}]}"#,
            ],
            &[
                "cbs_2",
                "cb_1",
                "active",
                "JPY",
                "5000",
                "",
                "false",
                r#"{"plan_id":"basic"}"#,
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.stripe_invoices",
        &[
            "id",
            "customer",
            "subscription",
            "status",
            "currency",
            "amount_due",
            "amount_paid",
            "created",
            "_deleted",
            "source_data",
        ],
        &[
            &[
                "in_1",
                "cus_1",
                "sub_1",
                "paid",
                "usd",
                "10000",
                "10000",
                "2025-01-01T00:00:00Z",
                "false",
                r#"{"status_transitions":{"finalized_at":1735693200,"paid_at":1735696800}}"#,
            ],
            &[
                "in_2",
                "cus_1",
                "",
                "draft",
                "usd",
                "500",
                "0",
                "2025-01-02T00:00:00Z",
                "true",
                "{}",
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.chargebee_invoices",
        &[
            "id",
            "customer_id",
            "subscription_id",
            "status",
            "currency_code",
            "amount_due",
            "amount_paid",
            "date",
            "paid_at",
        ],
        &[&[
            "cbi_1",
            "cb_1",
            "cbs_2",
            "payment_due",
            "JPY",
            "5000",
            "0",
            "2025-02-01T00:00:00Z",
            "",
        ]],
    )
    .await;
    land(
        &lake,
        "raw.zendesk_users",
        &["id", "email"],
        &[&["7", "Hank@Globex.com"], &["8", "someone@acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.zendesk_tickets",
        &[
            "id",
            "subject",
            "status",
            "priority",
            "requester_id",
            "organization_id",
            "created_at",
            "updated_at",
            "_deleted",
        ],
        &[
            &[
                "1",
                "Login broken",
                "solved",
                "high",
                "8",
                "100",
                "2025-01-10T00:00:00Z",
                "2025-01-11T00:00:00Z",
                "false",
            ],
            &[
                "2",
                "Invoice question",
                "open",
                "normal",
                "7",
                "",
                "2025-01-12T00:00:00Z",
                "2025-01-12T00:00:00Z",
                "false",
            ],
            &[
                "3",
                "Spam",
                "deleted",
                "",
                "7",
                "",
                "2025-01-12T00:00:00Z",
                "",
                "true",
            ],
        ],
    )
    .await;
    build(&lake, dir.path()).await;

    let acme = id_of(&lake, "salesforce", ACME).await;
    let globex = id_of(&lake, "salesforce", GLOBEX).await;
    let initech = id_of(&lake, "salesforce", INITECH).await;
    let name = |rows: Vec<String>| -> Vec<String> {
        rows.into_iter()
            .map(|r| {
                r.replace(&acme, "ACME")
                    .replace(&globex, "GLOBEX")
                    .replace(&initech, "INITECH")
            })
            .collect()
    };
    assert_eq!(
        name(
            query(
                &lake,
                "SELECT source, source_id, account_id, match_method FROM staging.customer_accounts"
            )
            .await
        ),
        [
            "chargebee,cb_1,GLOBEX,name",
            "stripe,cus_1,ACME,domain",
            "stripe,cus_2,INITECH,crm_id",
            "stripe,cus_3,,none",
            "zendesk,100,ACME,crm_id",
            "zendesk,200,GLOBEX,domain",
        ]
    );
    assert_eq!(
        name(query(&lake, "SELECT source_id, account_id, status, plan, round(mrr_usd, 2), currency, CAST(canceled_at AS VARCHAR) FROM staging.subscriptions").await),
        [
            "cbs_1,GLOBEX,canceled,enterprise-USD-monthly,0.0,USD,2025-03-01T00:00:00Z",
            "cbs_2,GLOBEX,active,basic,33.5,JPY,",
            "sub_1,ACME,active,Pro,100.0,USD,",
            "sub_2,INITECH,trialing,Pro,0.0,USD,",
            "sub_3,,active,prod_X,108.0,EUR,",
        ],
        "¥5,000 (zero-decimal) at 0.0067; cancelled and trialing subscriptions bill nothing"
    );
    let sub1 = id_of(&lake, "stripe", "sub_1").await;
    assert_eq!(
        name(query(&lake, "SELECT source_id, account_id, subscription_id, status, amount_due, amount_paid, currency, CAST(issued_at AS VARCHAR), CAST(paid_at AS VARCHAR) FROM staging.invoices").await)
            .into_iter()
            .map(|r| r.replace(&sub1, "SUB1"))
            .collect::<Vec<_>>(),
        [
            format!("cbi_1,GLOBEX,{},payment_due,5000.0,0.0,JPY,2025-02-01T00:00:00Z,", id_of(&lake, "chargebee", "cbs_2").await),
            "in_1,ACME,SUB1,paid,100.0,100.0,USD,2025-01-01T01:00:00Z,2025-01-01T02:00:00Z".to_string(),
        ]
    );
    let hank = query(
        &lake,
        "SELECT id FROM staging.contacts WHERE email = 'hank@globex.com'",
    )
    .await;
    assert_eq!(hank.len(), 1);
    assert_eq!(
        name(query(&lake, "SELECT source_id, account_id, contact_id, status, priority, CAST(solved_at AS VARCHAR) FROM staging.tickets").await)
            .into_iter()
            .map(|r| r.replace(&hank[0], "HANK"))
            .collect::<Vec<_>>(),
        [
            "1,ACME,,solved,high,2025-01-11T00:00:00Z",
            "2,GLOBEX,HANK,open,normal,",
        ]
    );
}

#[tokio::test]
async fn hubspot_engagements_pipedrive_activities_and_their_deal_contacts_and_owners() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.hubspot_companies",
        HS_COMPANY,
        &[&["501", "Acme", "acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_contacts",
        &["hs_object_id", "email", "associatedcompanyid"],
        &[
            &["601", "bob@acme.com", "501"],
            &["602", "eve@acme.com", "501"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.hubspot_deals",
        &[
            "hs_object_id",
            "dealname",
            "dealstage",
            "createdate",
            "hs_is_closed",
            "associated_company_ids",
            "associated_contact_ids",
            "hubspot_owner_id",
        ],
        &[&[
            "701",
            "Acme expansion",
            "qualifiedtobuy",
            "2025-01-01T00:00:00Z",
            "false",
            "501",
            "601;602",
            "55",
        ]],
    )
    .await;
    // An API owner (its id is what deals carry) and an archived one.
    land(
        &lake,
        "raw.hubspot_owners",
        &["id", "email", "first_name", "last_name", "archived"],
        &[
            &["55", "Ria@OurCo.com", "Ria", "Rep", "false"],
            &["56", "old@ourco.com", "Old", "Rep", "true"],
        ],
    )
    .await;
    let engagement = [
        "hs_object_id",
        "hs_timestamp",
        "associated_deal_ids",
        "associated_contact_ids",
        "associated_company_ids",
        "hubspot_owner_id",
    ];
    let mut calls = engagement.to_vec();
    calls.extend(["hs_call_direction", "hs_call_title", "hs_call_status"]);
    land(
        &lake,
        "raw.hubspot_calls",
        &calls,
        &[&[
            "801",
            "2025-02-01T10:00:00Z",
            "701",
            "601",
            "501",
            "55",
            "INBOUND",
            "Intro",
            "COMPLETED",
        ]],
    )
    .await;
    // A meeting with only a contact: linked through the contact's company to its one open deal,
    // at its start time rather than hs_timestamp.
    let mut meetings = engagement.to_vec();
    meetings.extend(["hs_meeting_start_time", "hs_meeting_title"]);
    land(
        &lake,
        "raw.hubspot_meetings",
        &meetings,
        &[&[
            "802",
            "2025-02-02T00:00:00Z",
            "",
            "602",
            "",
            "55",
            "2025-02-03T15:00:00Z",
            "Demo",
        ]],
    )
    .await;
    let mut notes = engagement.to_vec();
    notes.push("archived");
    land(
        &lake,
        "raw.hubspot_notes",
        &notes,
        &[&["803", "2025-02-04T00:00:00Z", "701", "", "", "55", "true"]],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_organizations",
        &["id", "name"],
        &[&["41", "Globex"]],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_persons",
        &["id", "email", "org_id"],
        &[&["31", "hank@globex.com", "41"]],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_deals",
        &["id", "title", "status", "add_time", "org_id", "person_id"],
        &[&[
            "21",
            "Globex pilot",
            "open",
            "2025-01-10T00:00:00Z",
            "41",
            "31",
        ]],
    )
    .await;
    land(
        &lake,
        "raw.pipedrive_activities",
        &[
            "id",
            "type",
            "subject",
            "done",
            "due_date",
            "due_time",
            "marked_as_done_time",
            "deal_id",
            "person_id",
            "org_id",
            "owner_id",
            "add_time",
            "is_deleted",
        ],
        &[
            &[
                "1001",
                "call",
                "Kickoff",
                "true",
                "2025-02-28",
                "",
                "2025-03-01T09:00:00Z",
                "21",
                "31",
                "41",
                "7",
                "2025-02-20T00:00:00Z",
                "false",
            ],
            &[
                "1002",
                "deadline",
                "Send terms",
                "false",
                "2025-03-05",
                "14:30",
                "",
                "21",
                "",
                "",
                "7",
                "2025-02-21T00:00:00Z",
                "false",
            ],
            &[
                "1003",
                "lunch",
                "Lunch",
                "false",
                "2025-03-06",
                "",
                "",
                "",
                "",
                "41",
                "7",
                "2025-02-22T00:00:00Z",
                "true",
            ],
        ],
    )
    .await;
    build(&lake, dir.path()).await;
    let ids = [
        ("hsdeal", id_of(&lake, "hubspot", "701").await),
        ("pddeal", id_of(&lake, "pipedrive", "21").await),
        ("acme", id_of(&lake, "hubspot", "501").await),
        ("globex", id_of(&lake, "pipedrive", "41").await),
        ("bob", id_of(&lake, "hubspot", "601").await),
        ("eve", id_of(&lake, "hubspot", "602").await),
        ("hank", id_of(&lake, "pipedrive", "31").await),
        ("ria", id_of(&lake, "hubspot", "owner:55").await),
        ("pduser", id_of(&lake, "pipedrive", "7").await),
    ];
    let readable = |lines: Vec<String>| named(&ids, lines);
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT source, source_id, type, CAST(occurred_at AS VARCHAR), direction, subject, outcome, \
                 deal_id, account_id, contact_id, owner_id, link_method, link_confidence \
                 FROM staging.activities ORDER BY source, source_id"
            )
            .await
        ),
        [
            "hubspot,801,call,2025-02-01T10:00:00Z,inbound,Intro,completed,hsdeal,acme,bob,ria,crm_association,1.0",
            "hubspot,802,meeting,2025-02-03T15:00:00Z,,Demo,,hsdeal,acme,eve,ria,single_open_deal,0.7200000000000001",
            "pipedrive,1001,call,2025-03-01T09:00:00Z,,Kickoff,done,pddeal,globex,hank,pduser,crm_association,1.0",
            "pipedrive,1002,task,2025-03-05T14:30:00Z,,Send terms,open,pddeal,,,pduser,crm_association,1.0",
        ]
    );
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT source, deal_id, contact_id, role, is_primary, confidence \
                 FROM staging.deal_contacts ORDER BY source, source_id"
            )
            .await
        ),
        [
            "hubspot,hsdeal,bob,,,",
            "hubspot,hsdeal,eve,,,",
            "pipedrive,pddeal,hank,,true,",
        ]
    );
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT id, source_id, name, email, is_active FROM staging.users \
                 WHERE source = 'hubspot' ORDER BY source_id"
            )
            .await
        ),
        [
            "ria,owner:55,Ria Rep,ria@ourco.com,true",
            // archived: kept (old deals name it), inactive; no name-only user "55" beside it
            format!(
                "{},owner:56,Old Rep,old@ourco.com,false",
                id_of(&lake, "hubspot", "owner:56").await
            )
            .as_str(),
        ]
    );
    // The deal's owner resolves to the API owner.
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT owner_id FROM staging.deals WHERE source = 'hubspot'"
            )
            .await
        ),
        ["ria"]
    );
}

#[tokio::test]
async fn quotas_from_salesforce_and_a_sheet_and_product_events_from_every_tool() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[
            &["001A", "Acme Corp", "acme.com"],
            &["001B", "Globex", "globex.com"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_user",
        &["id", "name", "email"],
        &[
            &["005A", "Ann Lee", "ann@ourco.com"],
            &["005B", "Bob Stone", "bob@ourco.com"],
        ],
    )
    .await;
    // Ann is also a HubSpot owner: the sheet's email picks the user who owns deals.
    land(
        &lake,
        "raw.hubspot_owners",
        &["id", "email", "first_name", "last_name"],
        &[&["77", "ann@ourco.com", "Ann", "Lee"]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_opportunity",
        &[
            "id",
            "name",
            "account_id",
            "owner_id",
            "stage_name",
            "amount",
        ],
        &[&["006A", "a", "001A", "005A", "Prospecting", "10"]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_contact",
        &["id", "account_id", "email"],
        &[&["003A", "001A", "carol@acme.com"]],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_forecasting_quota",
        &[
            "id",
            "quota_owner_id",
            "quota_amount",
            "start_date",
            "period_id",
            "currency_iso_code",
            "is_quantity",
        ],
        &[
            &["0J9A", "005A", "100000", "2026-01-01", "026Q1", "", "false"],
            // Its Period is not synced: the month from StartDate, said so.
            &[
                "0J9B",
                "005B",
                "50000",
                "2026-02-01",
                "026M2",
                "EUR",
                "false",
            ],
            // A quantity quota counts units: left out.
            &["0J9C", "005A", "", "2026-01-01", "026Q1", "", "true"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_period",
        &["id", "start_date", "end_date", "type"],
        &[&["026Q1", "2026-01-01", "2026-03-31", "Quarter"]],
    )
    .await;
    land(
        &lake,
        "raw.file_quotas",
        &[
            "owner_email",
            "owner_name",
            "owner_source",
            "owner_source_id",
            "period_start",
            "period_end",
            "period_type",
            "amount",
            "currency",
        ],
        &[
            &[
                "ANN@ourco.com ",
                "",
                "",
                "",
                "2026-04-01",
                "",
                "quarter",
                "120000",
                "",
            ],
            &[
                "",
                "",
                "HubSpot",
                "77",
                "2026-04-01",
                "2026-04-30",
                "",
                "10",
                "gbp",
            ],
            &[
                "",
                "bob stone",
                "",
                "",
                "2026-01-01",
                "",
                "year",
                "1",
                "USD",
            ],
            &[
                "nobody@ourco.com",
                "",
                "",
                "",
                "2026-01-01",
                "",
                "month",
                "5",
                "XXX",
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.amplitude_events",
        &[
            "uuid",
            "user_id",
            "event_type",
            "event_time",
            "user_properties",
        ],
        &[
            &[
                "a-1",
                "u1",
                "Login",
                "2026-03-01 10:00:00.000000",
                r#"{"email":"Carol@acme.com"}"#,
            ],
            &[
                "a-2",
                "dave@globex.com",
                "Export",
                "2026-03-01 11:00:00.000000",
                "",
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.mixpanel_events",
        &["event", "properties"],
        &[
            &[
                "Report Run",
                r#"{"time":1772359200,"distinct_id":"x9","$insert_id":"i1","$email":"x@initech.com"}"#,
            ],
            &[
                "Report Run",
                r#"{"time":1772359200000,"distinct_id":"x9","$insert_id":"i2"}"#,
            ],
        ],
    )
    .await;
    land(
        &lake,
        "raw.segment_tracks",
        &[
            "message_id",
            "type",
            "event",
            "user_id",
            "timestamp",
            "context",
        ],
        &[
            &[
                "m1",
                "track",
                "Invite Sent",
                "u5",
                "2026-03-02T09:00:00Z",
                r#"{"groupId":"001B","traits":{"email":"carol@acme.com"}}"#,
            ],
            &["m2", "identify", "", "u5", "2026-03-02T09:00:00Z", ""],
        ],
    )
    .await;
    land(
        &lake,
        "raw.product_events",
        &[
            "event_id",
            "user_id",
            "account_domain",
            "event_name",
            "event_timestamp",
        ],
        &[&[
            "e1",
            "42",
            "https://www.acme.com/",
            "Seat Added",
            "2026-03-03T00:00:00Z",
        ]],
    )
    .await;
    build(&lake, dir.path()).await;
    let ids = [
        ("ann", id_of(&lake, "salesforce", "005A").await),
        ("bob", id_of(&lake, "salesforce", "005B").await),
        ("ann_hs", id_of(&lake, "hubspot", "owner:77").await),
        ("acme", id_of(&lake, "salesforce", "001A").await),
        ("globex", id_of(&lake, "salesforce", "001B").await),
        ("carol", id_of(&lake, "salesforce", "003A").await),
    ];
    let readable = |lines: Vec<String>| {
        let mut out = named(&ids, lines);
        out.sort();
        out
    };
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT source, owner_id, CAST(period_start AS VARCHAR), CAST(period_end AS VARCHAR), \
                 period_type, currency, amount, round(amount_usd, 2) FROM staging.quotas"
            )
            .await
        ),
        [
            ",2026-01-01,2026-01-31,month,XXX,5.0,",
            "ann,2026-04-01,2026-06-30,quarter,USD,120000.0,120000.0",
            "ann_hs,2026-04-01,2026-04-30,custom,GBP,10.0,12.7",
            "bob,2026-01-01,2026-12-31,year,USD,1.0,1.0",
        ]
        .iter()
        .map(|r| format!("file,{r}"))
        .chain([
            "salesforce,ann,2026-01-01,2026-03-31,quarter,USD,100000.0,100000.0".to_string(),
            "salesforce,bob,2026-02-01,2026-02-28,month (assumed),EUR,50000.0,54000.0".to_string(),
        ])
        .collect::<Vec<_>>()
    );
    assert_eq!(
        readable(
            query(
                &lake,
                "SELECT source, event, CAST(occurred_at AS VARCHAR), user_id, email, account_id, \
                 contact_id, link_method FROM staging.product_events"
            )
            .await
        ),
        [
            "amplitude,Export,2026-03-01T11:00:00Z,dave@globex.com,dave@globex.com,globex,,email_domain",
            "amplitude,Login,2026-03-01T10:00:00Z,u1,carol@acme.com,acme,carol,contact",
            "file,Seat Added,2026-03-03T00:00:00Z,42,,acme,,account_domain",
            "mixpanel,Report Run,2026-03-01T10:00:00Z,x9,,,,",
            "mixpanel,Report Run,2026-03-01T10:00:00Z,x9,x@initech.com,,,",
            // The group's CRM account wins over the contact's.
            "segment,Invite Sent,2026-03-02T09:00:00Z,u5,carol@acme.com,globex,carol,account_id",
        ]
    );
    // A rebuild gives the same ids (re-imports upsert).
    let before = query(&lake, "SELECT id FROM staging.product_events").await;
    build(&lake, dir.path()).await;
    assert_eq!(
        query(&lake, "SELECT id FROM staging.product_events").await,
        before
    );
    // Five quotas have an owner and a USD amount (the unknown rep's has neither).
    let n = query(
        &lake,
        "SELECT count(*) FROM staging.quotas WHERE owner_id IS NOT NULL AND amount_usd > 0",
    )
    .await;
    assert_eq!(n, ["5"]);
}

#[tokio::test]
async fn a_run_scoped_to_one_deal_gives_the_rows_a_full_run_gives_and_leaves_the_others() {
    let dir = project_copy();
    let lake = memory_lake().await;
    land(
        &lake,
        "raw.salesforce_account",
        SF_ACCOUNT,
        &[&["001A", "Acme", "acme.com"]],
    )
    .await;
    let opps = |a_stage: &'static str| -> Vec<Vec<&'static str>> {
        vec![
            vec![
                "006A",
                "a",
                "001A",
                a_stage,
                "10",
                "2025-01-01T00:00:00Z",
                "2025-06-01",
                "false",
                "false",
            ],
            vec![
                "006B",
                "b",
                "001A",
                "Qualification",
                "20",
                "2025-01-02T00:00:00Z",
                "2025-06-01",
                "false",
                "false",
            ],
        ]
    };
    let opps_a = opps("Prospecting");
    let rows: Vec<&[&str]> = opps_a.iter().map(|r| r.as_slice()).collect();
    land(&lake, "raw.salesforce_opportunity", SF_OPP, &rows).await;
    const HISTORY: &[&str] = &["id", "opportunity_id", "stage_name", "created_date"];
    land(
        &lake,
        "raw.salesforce_opportunity_history",
        HISTORY,
        &[
            &["008A1", "006A", "Prospecting", "2025-01-01T00:00:00Z"],
            &["008B1", "006B", "Prospecting", "2025-01-02T00:00:00Z"],
            &["008B2", "006B", "Qualification", "2025-01-10T00:00:00Z"],
        ],
    )
    .await;
    land(
        &lake,
        "raw.salesforce_task",
        &["id", "what_id", "subject", "type", "created_date"],
        &[
            &[
                "00T1",
                "006A",
                "Discovery call",
                "Call",
                "2025-01-05T00:00:00Z",
            ],
            &["00T2", "006B", "Demo", "Call", "2025-01-09T00:00:00Z"],
        ],
    )
    .await;
    build(&lake, dir.path()).await;
    let snapshot = |lake: Lake| async move {
        (
            query(&lake, "SELECT * FROM staging.deals").await,
            query(&lake, "SELECT * FROM staging.deal_stage_history").await,
        )
    };
    let before = snapshot(lake.clone()).await;

    // Deal 006A moves on: its raw row changes and a history row arrives.
    let opps_b = opps("Needs Analysis");
    let rows: Vec<&[&str]> = opps_b.iter().map(|r| r.as_slice()).collect();
    land_as(
        &lake,
        "raw.salesforce_opportunity",
        SF_OPP,
        &rows,
        WriteMode::OverwriteWorkspace(WorkspaceId::new(WS).unwrap()),
    )
    .await;
    land(
        &lake,
        "raw.salesforce_opportunity_history",
        HISTORY,
        &[&["008A2", "006A", "Needs Analysis", "2025-01-07T00:00:00Z"]],
    )
    .await;
    let deal_a = id_of(&lake, "salesforce", "006A").await;
    let input = |name: &str, column: &str, values: Vec<String>| {
        (
            name.parse::<DatasetRef>().unwrap(),
            (column.to_string(), values),
        )
    };
    let scope = RunScope {
        inputs: [
            input("raw.salesforce_opportunity", "id", vec!["006A".into()]),
            input(
                "raw.salesforce_opportunity_history",
                "opportunity_id",
                vec!["006A".into()],
            ),
            input(
                "raw.salesforce_stage_snapshots",
                "deal_key",
                vec!["006A".into()],
            ),
            input("raw.hubspot_deals", "hs_object_id", vec![]),
            input("raw.hubspot_stage_snapshots", "deal_key", vec![]),
            input("raw.pipedrive_deals", "id", vec![]),
            input("raw.pipedrive_deal_stage_changes", "deal_id", vec![]),
            input("staging.activities", "deal_id", vec![deal_a.clone()]),
        ]
        .into_iter()
        .collect(),
        outputs: [
            ("staging.deals".parse().unwrap(), "id".to_string()),
            (
                "staging.deal_stage_history".parse().unwrap(),
                "deal_id".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
        values: vec![deal_a.clone()],
    };
    let project = Project::load(dir.path()).unwrap();
    let dag = ModelDag::load(&project).unwrap();
    let scoped = RunOptions {
        workspace: Some(WorkspaceId::new(WS).unwrap()),
        select: vec!["staging.deals".into(), "staging.deal_stage_history".into()],
        scope: Some(Arc::new(scope.clone())),
        ..RunOptions::default()
    };
    run_selected(&lake, &project, &dag, &scoped, &mut |_| {})
        .await
        .unwrap();
    let after_scoped = snapshot(lake.clone()).await;
    assert_ne!(after_scoped, before, "the deal changed");
    // The other deal's rows are the very same.
    let other = |rows: &Vec<String>| -> Vec<String> {
        rows.iter()
            .filter(|r| !r.contains(&deal_a))
            .cloned()
            .collect()
    };
    assert_eq!(other(&after_scoped.0), other(&before.0));
    assert_eq!(other(&after_scoped.1), other(&before.1));
    assert!(!other(&before.1).is_empty());
    // A full rebuild agrees with the scoped one, row for row.
    build(&lake, dir.path()).await;
    assert_eq!(snapshot(lake.clone()).await, after_scoped);
    let history = query(
        &lake,
        &format!(
            "SELECT from_stage, to_stage, trigger_activity_id IS NOT NULL FROM staging.deal_stage_history \
             WHERE deal_id = '{deal_a}'"
        ),
    )
    .await;
    assert_eq!(history.len(), 2, "{history:?}");

    // A model the scope does not name is refused before anything runs.
    let refused = RunOptions {
        select: vec!["staging.contacts".into()],
        ..scoped
    };
    let e = run_selected(&lake, &project, &dag, &refused, &mut |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be rebuilt for a few records"), "{e}");
}
