//! The monday.com connector against a mock of its GraphQL API on 127.0.0.1: boards paged by
//! page number with deleted boards as tombstones, items through `items_page` then
//! `next_items_page(cursor)`, a re-sync merging changed items, errors in 200 bodies
//! (complexity budget retried, authentication refused), a 429, a malformed page.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

fn item(id: &str, name: &str, group: &str, value: &str, updated_at: &str) -> Value {
    json!({"id": id, "name": name, "state": "active", "created_at": "2025-01-01T09:00:00Z",
           "updated_at": updated_at, "creator_id": "7", "group": {"id": group, "title": group.to_uppercase()},
           "column_values": [{"id": "deal_value", "type": "numbers", "text": value, "value": format!("\"{value}\"")},
                             {"id": "contact_email", "type": "email", "text": "ann@acme.com", "value": null}]})
}

fn first_page(items: Vec<Value>, cursor: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"boards": [{"items_page": {"cursor": cursor, "items": items}}]}, "account_id": 1
    }))
}

fn next_page(items: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"next_items_page": {"cursor": null, "items": items}}, "account_id": 1
    }))
}

async fn mount_items(server: &MockServer, value: &str) {
    Mock::given(method("POST"))
        .and(path("/v2"))
        .and(body_string_contains("items_page(limit"))
        .and(body_partial_json(json!({"variables": {"board": ["42"]}})))
        .respond_with(first_page(
            vec![
                item("101", "Acme renewal", "won", value, "2025-01-02T10:00:00Z"),
                item(
                    "102",
                    "Globex pilot",
                    "open",
                    "5000",
                    "2025-01-03T10:00:00Z",
                ),
            ],
            Some("MSw0Mix"),
        ))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2"))
        .and(body_string_contains("next_items_page"))
        .and(body_partial_json(
            json!({"variables": {"cursor": "MSw0Mix"}}),
        ))
        .respond_with(next_page(vec![item(
            "103",
            "Initech expansion",
            "open",
            "800",
            "2025-01-04T10:00:00Z",
        )]))
        .mount(server)
        .await;
}

fn monday(
    server: &MockServer,
    streams: &[&str],
    boards: bool,
) -> (revlake::sources::source::Connection, String) {
    let mut options = vec![("page_size", toml::Value::from(1))];
    if boards {
        options.push(("boards", toml::Value::Array(vec![42.into()])));
    }
    let (c, secrets) = connection(server, "monday", &["api_token"], streams, &options);
    (c, secrets["api_token"].clone())
}

#[tokio::test]
async fn items_follow_next_items_page_and_a_resync_merges_changes() {
    let server = MockServer::start().await;
    mount_items(&server, "12000").await;
    let (c, token) = monday(&server, &["items"], true);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, name, board_id, group_title, columns FROM raw.monday_items ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"101,Acme renewal,42,WON,{"contact_email":"ann@acme.com","deal_value":"12000"}"#,
            r#"102,Globex pilot,42,OPEN,{"contact_email":"ann@acme.com","deal_value":"5000"}"#,
            r#"103,Initech expansion,42,OPEN,{"contact_email":"ann@acme.com","deal_value":"800"}"#,
        ]
    );
    // The token goes as the Authorization header itself.
    let sent = server.received_requests().await.unwrap();
    assert!(sent.iter().all(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v == token.as_str())
    }));

    server.reset().await;
    mount_items(&server, "15000").await;
    let again = sync_acme(&lake, &c).await;
    assert!(again.error.is_none(), "{:?}", again.error);
    assert_eq!(count(&lake, "raw.monday_items").await, 3);
    let got = query(
        &lake,
        "SELECT id, columns FROM raw.monday_items WHERE id = '101'",
    )
    .await;
    assert_eq!(
        got,
        [r#"101,{"contact_email":"ann@acme.com","deal_value":"15000"}"#]
    );
}

#[tokio::test]
async fn boards_page_by_number_with_deleted_ones_as_tombstones_and_give_items_their_ids() {
    let server = MockServer::start().await;
    let board = |id: &str, state: &str| {
        json!({"id": id, "name": format!("Board {id}"), "state": state,
        "board_kind": "public", "workspace_id": "9", "updated_at": "2025-01-02T10:00:00Z", "owners": [{"id": "7", "email": "rep@us.com"}]})
    };
    Mock::given(method("POST"))
        .and(body_string_contains("boards(limit"))
        .and(body_partial_json(
            json!({"variables": {"page": 1, "limit": 1}}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"boards": [board("42", "active")]}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("boards(limit"))
        .and(body_partial_json(json!({"variables": {"page": 2}})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"boards": [board("43", "deleted")]}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("boards(limit"))
        .and(body_partial_json(json!({"variables": {"page": 3}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"boards": []}})))
        .mount(&server)
        .await;
    mount_items(&server, "12000").await;
    let (c, _) = monday(&server, &["boards"], false);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (2, 3));
    let got = query(
        &lake,
        "SELECT id, name, _deleted FROM raw.monday_boards ORDER BY id",
    )
    .await;
    assert_eq!(got, ["42,Board 42,false", "43,Board 43,true"]);

    // Without `boards`, items are read from every live board (43 is deleted: not asked).
    let (c, _) = monday(&server, &["items"], false);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(count(&lake, "raw.monday_items").await, 3);
}

#[tokio::test]
async fn a_complexity_error_in_a_200_and_a_429_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Complexity budget exhausted", "extensions": {"code": "COMPLEXITY_BUDGET_EXHAUSTED", "retry_in_seconds": 1}}]
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
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(first_page(
            vec![item(
                "101",
                "Acme renewal",
                "won",
                "1",
                "2025-01-02T10:00:00Z",
            )],
            None,
        ))
        .with_priority(4)
        .mount(&server)
        .await;
    let (c, _) = monday(&server, &["items"], true);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 3);
    assert_eq!(count(&lake, "raw.monday_items").await, 1);
}

#[tokio::test]
async fn a_malformed_page_commits_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("items_page(limit"))
        .respond_with(first_page(
            vec![item(
                "101",
                "Acme renewal",
                "won",
                "1",
                "2025-01-02T10:00:00Z",
            )],
            Some("c2"),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("next_items_page"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"data": {"next_items_page": {"cursor": null, "items": [7]}}}),
            ),
        )
        .mount(&server)
        .await;
    let (c, token) = monday(&server, &["items"], true);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert_malformed(&o, &token);
    assert!(
        lake.info(&"raw.monday_items".parse().unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_unauthenticated_answer_names_the_token_variable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Not Authenticated", "extensions": {"code": "UNAUTHENTICATED"}}]
        })))
        .mount(&server)
        .await;
    let (c, token) = monday(&server, &["boards"], false);
    let lake = memory_lake().await;
    assert_refused(&sync_acme(&lake, &c).await, &c, "api_token", &token);
}
