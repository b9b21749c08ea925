//! The Gmail connector against a mock of its API on 127.0.0.1: `pageToken`/`nextPageToken`
//! paging of a search, each message read with `format=metadata` and its headers, participants'
//! emails, `after:` incremental syncs, retries (429, rate-limit 403, 5xx), a malformed message
//! and a refused token.

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

const LIST: &str = "/gmail/v1/users/me/messages";
const QUERY: &str = "from:(@acme.com) OR to:(@acme.com)";

fn message(id: &str, from: &str, to: &str, subject: &str, internal_ms: i64) -> Value {
    json!({
        "id": id, "threadId": format!("t-{id}"), "labelIds": ["INBOX"], "snippet": "Hi there",
        "historyId": "9001", "internalDate": internal_ms.to_string(), "sizeEstimate": 2048,
        "payload": {"mimeType": "text/plain", "headers": [
            {"name": "From", "value": from}, {"name": "To", "value": to},
            {"name": "Subject", "value": subject}, {"name": "Date", "value": "Sat, 4 Jan 2025 10:00:00 +0000"}
        ]}
    })
}

async fn mount_message(server: &MockServer, m: Value) {
    let id = m["id"].as_str().unwrap().to_string();
    Mock::given(method("GET"))
        .and(path(format!("{LIST}/{id}")))
        .and(query_param("format", "metadata"))
        .respond_with(ResponseTemplate::new(200).set_body_json(m))
        .mount(server)
        .await;
}

async fn mount_first_sync(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("q", QUERY))
        .and(query_param("maxResults", "2"))
        .and(query_param_is_missing("pageToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{"id": "m2", "threadId": "t-m2"}, {"id": "m1", "threadId": "t-m1"}],
            "nextPageToken": "p2", "resultSizeEstimate": 3
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("pageToken", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{"id": "m0", "threadId": "t-m0"}], "resultSizeEstimate": 3
        })))
        .mount(server)
        .await;
    mount_message(
        server,
        message(
            "m2",
            "\"Doe, Ann\" <Ann@Acme.com>",
            "rep@us.com, Bob <bob@acme.com>",
            "Re: pricing",
            1_736_035_200_000,
        ),
    )
    .await;
    mount_message(
        server,
        message(
            "m1",
            "rep@us.com",
            "ann@acme.com",
            "Pricing",
            1_735_948_800_000,
        ),
    )
    .await;
    // m0 was deleted after it was listed.
    Mock::given(method("GET"))
        .and(path(format!("{LIST}/m0")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
        })))
        .mount(server)
        .await;
}

fn gmail(server: &MockServer) -> (revlake::sources::source::Connection, String) {
    let (c, secrets) = connection(
        server,
        "gmail",
        &["access_token"],
        &[],
        &[("query", QUERY.into()), ("page_size", 2.into())],
    );
    (c, secrets["access_token"].clone())
}

#[tokio::test]
async fn a_search_lands_messages_with_headers_and_participants() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    let (c, _) = gmail(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (2, 2));
    let got = query(
        &lake,
        "SELECT id, thread_id, \"from\", subject, participants, internal_date FROM raw.gmail_messages ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"m1,t-m1,rep@us.com,Pricing,["rep@us.com","ann@acme.com"],2025-01-04T00:00:00Z"#,
            r#"m2,t-m2,"Doe, Ann" <Ann@Acme.com>,Re: pricing,["ann@acme.com","rep@us.com","bob@acme.com"],2025-01-05T00:00:00Z"#,
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T00:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_adds_after_to_the_query() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("q", format!("({QUERY}) after:1736035199")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{"id": "m3", "threadId": "t-m2"}], "resultSizeEstimate": 1
        })))
        .mount(&server)
        .await;
    mount_message(
        &server,
        message(
            "m3",
            "ann@acme.com",
            "rep@us.com",
            "Signed",
            1_736_121_600_000,
        ),
    )
    .await;
    let (c, _) = gmail(&server);
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 1);
    assert_eq!(count(&lake, "raw.gmail_messages").await, 3);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-06T00:00:00+00:00")
    );
}

#[tokio::test]
async fn reads_are_retried_after_a_429_a_rate_limit_403_and_a_500() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "m1"}]})))
        .mount(&server)
        .await;
    let m1 = format!("{LIST}/m1");
    Mock::given(method("GET"))
        .and(path(m1.as_str()))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(m1.as_str()))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": 403, "message": "User-rate limit exceeded", "status": "PERMISSION_DENIED",
            "errors": [{"reason": "userRateLimitExceeded", "domain": "usageLimits"}]}})))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(m1.as_str()))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(m1.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(message(
            "m1",
            "a@acme.com",
            "b@us.com",
            "Hi",
            1_736_035_200_000,
        )))
        .with_priority(4)
        .mount(&server)
        .await;
    let (c, _) = gmail(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 3);
    assert_eq!(
        query(&lake, "SELECT id, subject FROM raw.gmail_messages").await,
        ["m1,Hi"]
    );
}

#[tokio::test]
async fn a_malformed_message_commits_nothing_and_keeps_the_cursor() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("q", format!("({QUERY}) after:1736035199")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "m9"}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{LIST}/m9")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "m9", "payload": {"headers": "From: x"}})),
        )
        .mount(&server)
        .await;
    let (c, token) = gmail(&server);
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert_malformed(&second, &token);
    assert!(
        second.error.as_deref().unwrap().contains("payload.headers"),
        "{:?}",
        second.error
    );
    assert_eq!(count(&lake, "raw.gmail_messages").await, 2);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T00:00:00+00:00")
    );
}

#[tokio::test]
async fn a_refused_token_names_its_variable_never_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})))
        .mount(&server)
        .await;
    let (c, token) = gmail(&server);
    let lake = memory_lake().await;
    assert_refused(&sync_acme(&lake, &c).await, &c, "access_token", &token);
}
