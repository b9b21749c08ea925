//! The Gong connector against a mock of its API on 127.0.0.1: `records.cursor` pages of users
//! (GET) and of extensive call data (POST, the cursor in the body), tracked users resolved by
//! email, participants' emails and CRM ids, transcripts on demand, "no calls found" as an
//! empty page, incremental syncs from `fromDateTime`, retries, a malformed page and a refused
//! key.

use std::collections::BTreeMap;

use revlake::lake::DatasetRef;
use revlake::sources::registry;
use revlake::sources::source::Connection;
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, memory_lake, query, sync_acme};

/// A connection to `server` whose access key and secret are in fresh environment variables.
fn connection(server: &MockServer, streams: &[&str], tracked: &[&str]) -> (Connection, String) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (key_var, secret_var) = (
        format!("GONG_KEY_{suffix}"),
        format!("GONG_SECRET_{suffix}"),
    );
    let secret = format!("gongsecret-{}", uuid::Uuid::new_v4().simple());
    // SAFETY: each test sets its own uniquely named variables; no test reads another's.
    unsafe {
        std::env::set_var(&key_var, "AK123");
        std::env::set_var(&secret_var, &secret);
    }
    let mut options = toml::Table::new();
    options.insert("min_backoff_ms".into(), 10.into());
    if !tracked.is_empty() {
        options.insert(
            "tracked_users".into(),
            toml::Value::Array(tracked.iter().map(|t| toml::Value::from(*t)).collect()),
        );
    }
    let c = Connection {
        name: "calls".into(),
        source: "gong".into(),
        base_url: Some(server.uri()),
        credentials: BTreeMap::from([
            ("access_key".to_string(), key_var),
            ("access_key_secret".to_string(), secret_var),
        ]),
        streams: streams.iter().map(|s| s.to_string()).collect(),
        request_budget: None,
        options,
    };
    (c, secret)
}

fn call(id: &str, title: &str, started: &str, buyer: &str) -> Value {
    json!({
        "metaData": {
            "id": id, "url": format!("https://app.gong.io/call?id={id}"), "title": title,
            "scheduled": started, "started": started, "duration": 1800,
            "primaryUserId": "234599484848423", "direction": "Conference", "system": "Zoom",
            "scope": "External", "media": "Video", "language": "eng",
            "workspaceId": "623457276584334", "isPrivate": false
        },
        "context": [{"system": "Salesforce", "objects": [
            {"objectType": "Account", "objectId": "0015e00000ABC"},
            {"objectType": "Opportunity", "objectId": "0065e00000XYZ"}]}],
        "parties": [
            {"id": "56825452554556", "emailAddress": "rep@ourco.com", "name": "Riley Rep",
             "title": "AE", "userId": "234599484848423", "speakerId": "6432345678555530067",
             "affiliation": "Internal", "methods": ["Invitee"]},
            {"id": "56825452554557", "emailAddress": buyer, "name": "Bea Buyer",
             "affiliation": "External", "methods": ["Invitee"]}
        ],
        "content": {"topics": [{"name": "Pricing", "duration": 460}],
                    "trackers": [{"id": "t1", "name": "Competitors", "count": 2}]},
        "interaction": {"interactionStats": [{"name": "Talk Ratio", "value": 0.38},
                                             {"name": "Interactivity", "value": 6.2}]}
    })
}

fn calls_page(calls: Vec<Value>, cursor: Option<&str>) -> ResponseTemplate {
    let mut records =
        json!({"totalRecords": 3, "currentPageSize": calls.len(), "currentPageNumber": 0});
    if let Some(c) = cursor {
        records["cursor"] = json!(c);
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "requestId": "4al018gzaztcr8nbukw", "records": records, "calls": calls
    }))
}

fn user(id: &str, email: &str) -> Value {
    json!({"id": id, "emailAddress": email, "firstName": "R", "lastName": "Rep",
           "active": true, "created": "2024-01-02T03:04:05Z", "managerId": null})
}

/// Two pages of users: the rep, then a manager.
async fn mount_users(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .and(query_param("cursor", "u2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "requestId": "r2", "records": {"totalRecords": 2, "currentPageSize": 1, "currentPageNumber": 1},
            "users": [user("111", "manager@ourco.com")]
        })))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "requestId": "r1",
            "records": {"totalRecords": 2, "currentPageSize": 1, "currentPageNumber": 0, "cursor": "u2"},
            "users": [user("234599484848423", "Rep@OurCo.com")]
        })))
        .with_priority(2)
        .mount(server)
        .await;
}

#[tokio::test]
async fn tracked_users_calls_land_with_participants_emails_and_crm_ids() {
    let server = MockServer::start().await;
    mount_users(&server).await;
    let (c, secret) = connection(&server, &["calls"], &["rep@ourco.com"]);
    let selector = json!({"contentSelector": {"context": "Extended", "exposedFields": {
        "parties": true, "content": {"topics": true, "trackers": true},
        "interaction": {"interactionStats": true}}}});
    let tracked = json!({"filter": {"primaryUserIds": ["234599484848423"]}});
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .and(body_partial_json(json!({"cursor": "c2"})))
        .respond_with(calls_page(
            vec![call(
                "3",
                "Initech intro",
                "2025-01-03T10:00:00Z",
                "i@initech.com",
            )],
            None,
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .and(basic_auth("AK123", secret.as_str()))
        .and(body_partial_json(&selector))
        .and(body_partial_json(&tracked))
        .respond_with(calls_page(
            vec![
                call("2", "Globex demo", "2025-01-04T10:00:00Z", "g@globex.com"),
                call("1", "Acme discovery", "2025-01-02T10:00:00Z", "a@acme.com"),
            ],
            Some("c2"),
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    // The columns raw.gong_calls declares in transforms/sources.toml.
    let got = query(
        &lake,
        "SELECT id, title, CAST(started AS VARCHAR), duration, crm_source, crm_deal_id, \
         crm_account_id, talk_ratio, participants LIKE '%\"email\":\"rep@ourco.com\"%' \
         FROM raw.gong_calls ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "1,Acme discovery,2025-01-02T10:00:00Z,1800,Salesforce,0065e00000XYZ,0015e00000ABC,0.38,true",
            "2,Globex demo,2025-01-04T10:00:00Z,1800,Salesforce,0065e00000XYZ,0015e00000ABC,0.38,true",
            "3,Initech intro,2025-01-03T10:00:00Z,1800,Salesforce,0065e00000XYZ,0015e00000ABC,0.38,true",
        ]
    );
    let emails = query(
        &lake,
        "SELECT participants FROM raw.gong_calls WHERE id = '1'",
    )
    .await;
    assert!(emails[0].contains("a@acme.com"), "{emails:?}");
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn users_page_by_the_records_cursor() {
    let server = MockServer::start().await;
    mount_users(&server).await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["users"], &[]);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.pages, 2);
    let got = query(
        &lake,
        "SELECT id, email_address FROM raw.gong_users ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        ["111,manager@ourco.com", "234599484848423,Rep@OurCo.com"]
    );
}

#[tokio::test]
async fn an_incremental_sync_with_no_new_calls_is_an_empty_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .and(body_partial_json(
            json!({"filter": {"fromDateTime": "2025-01-04T10:00:00Z"}}),
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "requestId": "4al0", "errors": ["No calls found corresponding to the provided filters"]
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .respond_with(calls_page(
            vec![
                call("2", "Globex demo", "2025-01-04T10:00:00Z", "g@globex.com"),
                call("1", "Acme discovery", "2025-01-02T10:00:00Z", "a@acme.com"),
            ],
            None,
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["calls"], &[]);
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 0);
    assert_eq!(
        second.cursor_before.unwrap().to_rfc3339(),
        "2025-01-04T10:00:00+00:00"
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn a_429_with_retry_after_and_a_500_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"requestId": "x", "errors": ["API rate limit exceeded"]})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .respond_with(ResponseTemplate::new(500).set_body_string("Internal Server Error"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .respond_with(calls_page(
            vec![call(
                "1",
                "Acme discovery",
                "2025-01-02T10:00:00Z",
                "a@acme.com",
            )],
            None,
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["calls"], &[]);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.retries, o.records), (2, 1));
}

#[tokio::test]
async fn a_malformed_page_commits_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .and(body_partial_json(json!({"cursor": "c2"})))
        .respond_with(calls_page(vec![json!({"parties": []})], None))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .respond_with(calls_page(
            vec![call(
                "1",
                "Acme discovery",
                "2025-01-02T10:00:00Z",
                "a@acme.com",
            )],
            Some("c2"),
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, secret) = connection(&server, &["calls"], &[]);
    let o = sync_acme(&lake, &c).await;
    let error = o.error.expect("the stream fails");
    assert!(
        error.contains("malformed page") && error.contains("metaData"),
        "{error}"
    );
    assert!(!error.contains(&secret), "{error}");
    let raw: DatasetRef = "raw.gong_calls".parse().unwrap();
    assert!(lake.try_load(&raw).await.unwrap().is_none());
    assert_eq!(acme_cursor(&lake, &c).await, None);
}

#[tokio::test]
async fn a_refused_key_names_its_variable_never_the_secret() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"requestId": "x", "errors": ["Invalid access key or secret"]}),
            ),
        )
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, secret) = connection(&server, &["users"], &[]);
    let o = sync_acme(&lake, &c).await;
    let error = o.error.expect("401 fails");
    assert!(error.contains("not authorized"), "{error}");
    assert!(
        error.contains(&c.credentials["access_key_secret"]),
        "{error}"
    );
    assert!(!error.contains(&secret), "{error}");
}

#[tokio::test]
async fn transcripts_on_demand_cover_the_tracked_users_calls() {
    let server = MockServer::start().await;
    let (c, _) = connection(&server, &["transcripts"], &["234599484848423"]);
    // The tracked user's call ids, without content.
    Mock::given(method("POST"))
        .and(path("/v2/calls/extensive"))
        .and(body_partial_json(
            json!({"filter": {"primaryUserIds": ["234599484848423"]}}),
        ))
        .respond_with(calls_page(
            vec![call(
                "1",
                "Acme discovery",
                "2025-01-02T10:00:00Z",
                "a@acme.com",
            )],
            None,
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/calls/transcript"))
        .and(body_partial_json(json!({"filter": {"callIds": ["1"]}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "requestId": "t1", "records": {"totalRecords": 1, "currentPageSize": 1, "currentPageNumber": 0},
            "callTranscripts": [{"callId": "1", "transcript": [
                {"speakerId": "6432345678555530067", "topic": "Pricing",
                 "sentences": [{"start": 460, "end": 5480, "text": "Let's talk numbers."}]}]}]
        })))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    let got = query(
        &lake,
        "SELECT call_id, transcript LIKE '%Let''s talk numbers.%' FROM raw.gong_transcripts",
    )
    .await;
    assert_eq!(got, ["1,true"]);
    // Not synced unless named.
    let defaults = registry::vendor("gong").unwrap().default_streams;
    assert!(!defaults.contains(&"transcripts"));
}
