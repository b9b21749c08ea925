//! The Fireflies connector against a mock of its GraphQL API on 127.0.0.1: skip/limit paging
//! in the variables, the organizer filter, `fromDate` incremental syncs, GraphQL errors
//! answered with HTTP 200, retries, a malformed page and a refused key.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

fn transcript(id: &str, title: &str, date_ms: i64, participants: &[&str]) -> Value {
    json!({"id": id, "title": title, "date": date_ms, "dateString": "2025-01-04T10:00:00.000Z",
           "duration": 31.5, "organizer_email": "rep@us.com", "host_email": "rep@us.com",
           "participants": participants, "transcript_url": format!("https://app.fireflies.ai/view/{id}"),
           "meeting_attendees": [{"displayName": "Ann", "email": "ann@acme.com", "name": "Ann"}],
           "speakers": [{"id": 0, "name": "Rep"}, {"id": 1, "name": "Ann"}],
           "summary": {"overview": "Pricing discussed", "action_items": "Send quote", "keywords": ["pricing"]}})
}

fn data(transcripts: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": {"transcripts": transcripts}}))
}

/// A request whose GraphQL variables have no `fromDate`.
fn from_start(r: &Request) -> bool {
    let b: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    b.pointer("/variables/fromDate").is_none()
}

async fn mount_first_sync(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(body_partial_json(
            json!({"variables": {"limit": 2, "skip": 0, "organizers": ["rep@us.com"]}}),
        ))
        .and(from_start)
        .respond_with(data(vec![
            transcript(
                "T3",
                "Acme negotiation",
                1_736_035_200_000,
                &["ann@acme.com", "rep@us.com"],
            ),
            transcript("T2", "Globex demo", 1_735_948_800_000, &["bob@globex.com"]),
        ]))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(body_partial_json(
            json!({"variables": {"limit": 2, "skip": 2}}),
        ))
        .and(from_start)
        .respond_with(data(vec![transcript(
            "T1",
            "Acme intro",
            1_735_862_400_000,
            &["ann@acme.com"],
        )]))
        .mount(server)
        .await;
}

fn fireflies(server: &MockServer) -> (revlake::sources::source::Connection, String) {
    let organizers = toml::Value::Array(vec!["rep@us.com".into()]);
    let (c, secrets) = connection(
        server,
        "fireflies",
        &["api_key"],
        &[],
        &[("organizers", organizers), ("page_size", 2.into())],
    );
    (c, secrets["api_key"].clone())
}

#[tokio::test]
async fn transcripts_page_by_skip_for_the_chosen_organizers() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    let (c, _) = fireflies(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, title, date, duration, organizer_email, participants FROM raw.fireflies_transcripts ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"T1,Acme intro,2025-01-03T00:00:00Z,31.5,rep@us.com,["ann@acme.com"]"#,
            r#"T2,Globex demo,2025-01-04T00:00:00Z,31.5,rep@us.com,["bob@globex.com"]"#,
            r#"T3,Acme negotiation,2025-01-05T00:00:00Z,31.5,rep@us.com,["ann@acme.com","rep@us.com"]"#,
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T00:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_asks_from_the_cursor_date() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .and(body_partial_json(
            json!({"variables": {"fromDate": "2025-01-05T00:00:00.000Z", "skip": 0}}),
        ))
        .respond_with(data(vec![transcript(
            "T4",
            "Acme close",
            1_736_121_600_000,
            &["ann@acme.com"],
        )]))
        .mount(&server)
        .await;
    let (c, _) = fireflies(&server);
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 1);
    assert_eq!(count(&lake, "raw.fireflies_transcripts").await, 4);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-06T00:00:00+00:00")
    );
}

#[tokio::test]
async fn rate_limits_in_a_200_body_a_429_and_a_502_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Too many requests. Please retry after 1s", "code": "too_many_requests",
                        "extensions": {"code": "too_many_requests", "status": 429}}], "data": null
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(data(vec![transcript(
            "T1",
            "Acme intro",
            1_735_862_400_000,
            &["ann@acme.com"],
        )]))
        .with_priority(4)
        .mount(&server)
        .await;
    let (c, _) = fireflies(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 3);
    assert_eq!(count(&lake, "raw.fireflies_transcripts").await, 1);
}

#[tokio::test]
async fn a_malformed_page_and_a_query_error_commit_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"variables": {"skip": 0}})))
        .respond_with(data(vec![
            transcript("T3", "Acme negotiation", 1_736_035_200_000, &[]),
            transcript("T2", "Globex demo", 1_735_948_800_000, &[]),
        ]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"variables": {"skip": 2}})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"transcripts": {"id": "T1"}}})),
        )
        .mount(&server)
        .await;
    let (c, key) = fireflies(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert_malformed(&o, &key);
    assert_eq!(o.failed, 2);
    assert!(
        lake.info(&"raw.fireflies_transcripts".parse().unwrap())
            .await
            .is_err()
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Cannot query field \"foo\"", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]
        })))
        .mount(&server)
        .await;
    let (c, _) = fireflies(&server);
    let o = sync_acme(&lake, &c).await;
    let error = o.error.expect("the query fails");
    assert!(
        error.contains("Fireflies graphql_validation_failed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_key_in_a_200_body_names_its_variable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Invalid API key", "code": "auth_failed", "extensions": {"code": "auth_failed"}}]
        })))
        .mount(&server)
        .await;
    let (c, key) = fireflies(&server);
    let lake = memory_lake().await;
    assert_refused(&sync_acme(&lake, &c).await, &c, "api_key", &key);
}
