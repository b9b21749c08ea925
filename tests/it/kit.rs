//! The Kit (ConvertKit v4) connector against a mock of its API on 127.0.0.1: cursor paging
//! by `pagination.end_cursor` while `has_next_page`, `X-Kit-Api-Key`, subscribers of every
//! state, `updated_after` incremental syncs from the previous sync's start, retries, a
//! malformed page and a refused key.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

fn subscriber(id: i64, email: &str, state: &str) -> Value {
    json!({"id": id, "first_name": email.split('@').next(), "email_address": email,
           "state": state, "created_at": "2025-01-02T10:00:00Z", "fields": {"company": "Acme"}})
}

fn page(records: Vec<Value>, end: &str, more: bool) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "subscribers": records,
        "pagination": {"has_previous_page": false, "has_next_page": more,
                       "start_cursor": "WzFd", "end_cursor": end, "per_page": 2}
    }))
}

async fn mount_first_sync(server: &MockServer, key: &str) {
    Mock::given(method("GET"))
        .and(path("/v4/subscribers"))
        .and(header("X-Kit-Api-Key", key))
        .and(query_param("status", "all"))
        .and(query_param("per_page", "2"))
        .and(query_param_is_missing("after"))
        .and(query_param_is_missing("updated_after"))
        .respond_with(page(
            vec![
                subscriber(1, "ann@acme.com", "active"),
                subscriber(2, "bob@globex.com", "active"),
            ],
            "WzJd",
            true,
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/subscribers"))
        .and(query_param("after", "WzJd"))
        .respond_with(page(
            vec![subscriber(3, "cy@initech.com", "bounced")],
            "WzNd",
            false,
        ))
        .mount(server)
        .await;
}

fn kit(server: &MockServer, streams: &[&str]) -> (revlake::sources::source::Connection, String) {
    let (c, secrets) = connection(
        server,
        "kit",
        &["api_key"],
        streams,
        &[("page_size", 2.into())],
    );
    (c, secrets["api_key"].clone())
}

#[tokio::test]
async fn subscribers_page_while_has_next_page_with_every_state() {
    let server = MockServer::start().await;
    let (c, key) = kit(&server, &["subscribers"]);
    mount_first_sync(&server, &key).await;
    let lake = memory_lake().await;
    let before = chrono::Utc::now();
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    // The last page still names a cursor (WzNd): not followed.
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, email_address, state, fields FROM raw.kit_subscribers ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"1,ann@acme.com,active,{"company":"Acme"}"#,
            r#"2,bob@globex.com,active,{"company":"Acme"}"#,
            r#"3,cy@initech.com,bounced,{"company":"Acme"}"#,
        ]
    );
    // The cursor is when this sync started.
    let cursor = acme_cursor(&lake, &c).await.expect("a cursor");
    let cursor = chrono::DateTime::parse_from_rfc3339(&cursor).unwrap();
    assert!(cursor >= before - chrono::Duration::seconds(1), "{cursor}");
}

#[tokio::test]
async fn an_incremental_sync_asks_for_subscribers_updated_since_the_last_sync() {
    let server = MockServer::start().await;
    let (c, key) = kit(&server, &["subscribers"]);
    mount_first_sync(&server, &key).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    Mock::given(method("GET"))
        .and(path("/v4/subscribers"))
        .and(move |r: &Request| {
            r.url.query_pairs().any(|(k, v)| {
                k == "updated_after"
                    && chrono::DateTime::parse_from_rfc3339(&v).is_ok_and(|t| t >= before)
            })
        })
        .respond_with(page(
            vec![subscriber(2, "bob@globex.com", "cancelled")],
            "WzJd",
            false,
        ))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 1);
    let got = query(
        &lake,
        "SELECT id, state FROM raw.kit_subscribers ORDER BY id",
    )
    .await;
    assert_eq!(got, ["1,active", "2,cancelled", "3,bounced"]);
}

#[tokio::test]
async fn broadcasts_land_after_a_429_and_a_500() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v4/broadcasts"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"errors": ["Too many requests"]})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/broadcasts"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v4/broadcasts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "broadcasts": [{"id": 7, "subject": "January update", "public": true,
                            "created_at": "2025-01-03T09:00:00Z", "send_at": "2025-01-04T09:00:00Z",
                            "published_at": null, "email_address": "news@us.com"}],
            "pagination": {"has_previous_page": false, "has_next_page": false,
                           "start_cursor": null, "end_cursor": null, "per_page": 500}
        })))
        .with_priority(3)
        .mount(&server)
        .await;
    let (c, _) = kit(&server, &["broadcasts"]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    let got = query(&lake, "SELECT id, subject, send_at FROM raw.kit_broadcasts").await;
    assert_eq!(got, ["7,January update,2025-01-04T09:00:00Z"]);
}

#[tokio::test]
async fn a_page_promising_more_without_a_cursor_commits_nothing() {
    let server = MockServer::start().await;
    let (c, key) = kit(&server, &["subscribers"]);
    mount_first_sync(&server, &key).await;
    Mock::given(method("GET"))
        .and(path("/v4/subscribers"))
        .and(query_param_is_missing("after"))
        .and(|r: &Request| r.url.query_pairs().any(|(k, _)| k == "updated_after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "subscribers": [subscriber(4, "di@acme.com", "active")],
            "pagination": {"has_next_page": true, "end_cursor": null}
        })))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let cursor = acme_cursor(&lake, &c).await;
    let second = sync_acme(&lake, &c).await;
    assert_malformed(&second, &key);
    assert!(
        second.error.as_deref().unwrap().contains("has_next_page"),
        "{:?}",
        second.error
    );
    assert_eq!(count(&lake, "raw.kit_subscribers").await, 3);
    assert_eq!(acme_cursor(&lake, &c).await, cursor);
}

#[tokio::test]
async fn a_refused_key_names_its_variable_never_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"errors": ["The API key is invalid"]})),
        )
        .mount(&server)
        .await;
    let (c, key) = kit(&server, &["sequences"]);
    let lake = memory_lake().await;
    assert_refused(&sync_acme(&lake, &c).await, &c, "api_key", &key);
}
