//! The Salesloft connector against a mock of its API on 127.0.0.1: `page`/`per_page` paging by
//! `metadata.paging.next_page`, reference ids, `updated_at[gte]` incremental syncs, retries, a
//! malformed page and a refused key.

use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

fn person(id: i64, email: &str, account: i64, updated_at: &str) -> Value {
    json!({
        "id": id, "first_name": email.split('@').next(), "last_name": "Doe",
        "email_address": email, "title": "CFO",
        "account": {"id": account, "_href": format!("https://api.salesloft.com/v2/accounts/{account}")},
        "owner": {"id": 9, "_href": "https://api.salesloft.com/v2/users/9"},
        "cadences": [], "created_at": "2025-01-01T09:00:00.000000-05:00",
        "updated_at": updated_at
    })
}

fn list(data: Vec<Value>, page: u64, next: Option<u64>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "metadata": {"filtering": {}, "sorting": {"sort_by": "updated_at", "sort_direction": "ASC"},
                     "paging": {"per_page": 2, "current_page": page, "next_page": next,
                                "prev_page": if page > 1 { json!(page - 1) } else { Value::Null }}},
        "data": data
    }))
}

async fn mount_first_sync(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v2/people"))
        .and(query_param("per_page", "2"))
        .and(query_param("sort_by", "updated_at"))
        .and(query_param("sort_direction", "ASC"))
        .and(query_param_is_missing("page"))
        .and(query_param_is_missing("updated_at[gte]"))
        .respond_with(list(
            vec![
                person(1, "ann@acme.com", 55, "2025-01-02T10:00:00.000000Z"),
                person(2, "bob@globex.com", 56, "2025-01-03T10:00:00.000000Z"),
            ],
            1,
            Some(2),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/people"))
        .and(query_param("page", "2"))
        .and(query_param_is_missing("updated_at[gte]"))
        .respond_with(list(
            vec![person(
                3,
                "cy@initech.com",
                57,
                "2025-01-04T10:00:00.000000Z",
            )],
            2,
            None,
        ))
        .mount(server)
        .await;
}

#[tokio::test]
async fn people_page_by_next_page_and_land_account_ids() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    let (c, _) = connection(
        &server,
        "salesloft",
        &["api_key"],
        &["people"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, email_address, account_id, owner_id FROM raw.salesloft_people ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "1,ann@acme.com,55,9",
            "2,bob@globex.com,56,9",
            "3,cy@initech.com,57,9"
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_asks_for_updated_at_gte_the_cursor() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("GET"))
        .and(path("/v2/people"))
        .and(query_param(
            "updated_at[gte]",
            "2025-01-04T10:00:00.000000Z",
        ))
        .respond_with(list(
            vec![person(
                2,
                "bob@globex.com",
                58,
                "2025-01-05T10:00:00.000000Z",
            )],
            1,
            None,
        ))
        .mount(&server)
        .await;
    let (c, _) = connection(
        &server,
        "salesloft",
        &["api_key"],
        &["people"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 1);
    let got = query(
        &lake,
        "SELECT id, account_id FROM raw.salesloft_people ORDER BY id",
    )
    .await;
    assert_eq!(got, ["1,55", "2,58", "3,57"]);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T10:00:00+00:00")
    );
}

#[tokio::test]
async fn emails_land_counts_after_a_429_and_a_500() {
    let server = MockServer::start().await;
    let emails = "/v2/activities/emails";
    Mock::given(method("GET"))
        .and(path(emails))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(emails))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": "oops"})))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let (c, secrets) = connection(&server, "salesloft", &["api_key"], &["emails"], &[]);
    Mock::given(method("GET"))
        .and(path(emails))
        .and(bearer_token(secrets["api_key"].as_str()))
        .respond_with(list(
            vec![json!({
                "id": 800, "recipient_email_address": "ann@acme.com", "status": "sent",
                "bounced": false, "subject": "Following up",
                "counts": {"opens": 4, "clicks": 1, "replies": 1, "views": 4, "attachment_views": 0},
                "recipient": {"id": 1, "_href": "x"}, "user": {"id": 9, "_href": "y"},
                "cadence": {"id": 3, "_href": "z"},
                "sent_at": "2025-01-02T10:00:00.000000Z",
                "created_at": "2025-01-02T10:00:00.000000Z", "updated_at": "2025-01-02T11:00:00.000000Z"
            })],
            1,
            None,
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    let got = query(
        &lake,
        "SELECT id, recipient_email_address, recipient_id, cadence_id, counts FROM raw.salesloft_emails",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"800,ann@acme.com,1,3,{"attachment_views":0,"clicks":1,"opens":4,"replies":1,"views":4}"#
        ]
    );
}

#[tokio::test]
async fn a_malformed_page_commits_nothing_and_keeps_the_cursor() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("GET"))
        .and(path("/v2/people"))
        .and(query_param(
            "updated_at[gte]",
            "2025-01-04T10:00:00.000000Z",
        ))
        .and(query_param_is_missing("page"))
        .respond_with(list(
            vec![person(4, "di@acme.com", 55, "2025-01-05T10:00:00.000000Z")],
            1,
            Some(2),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/people"))
        .and(query_param(
            "updated_at[gte]",
            "2025-01-04T10:00:00.000000Z",
        ))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&server)
        .await;
    let (c, secrets) = connection(
        &server,
        "salesloft",
        &["api_key"],
        &["people"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert_malformed(&second, &secrets["api_key"]);
    assert_eq!(count(&lake, "raw.salesloft_people").await, 3);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn a_refused_key_names_its_variable_never_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": "Invalid Bearer token"})),
        )
        .mount(&server)
        .await;
    let (c, secrets) = connection(&server, "salesloft", &["api_key"], &["meetings"], &[]);
    let lake = memory_lake().await;
    assert_refused(
        &sync_acme(&lake, &c).await,
        &c,
        "api_key",
        &secrets["api_key"],
    );
}
