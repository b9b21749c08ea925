//! The Zendesk connector against a mock of its API on 127.0.0.1: cursor-based exports
//! (`after_url` until `end_of_stream`), the time-based organization export (`next_page`),
//! deleted tickets as tombstones, incremental syncs from `start_time`, retries, a malformed
//! page and a refused token.

use std::collections::BTreeMap;

use revlake::sources::registry;
use revlake::sources::source::Connection;
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};

const TICKETS: &str = "/api/v2/incremental/tickets/cursor.json";

/// A connection to `server` whose email and token are in fresh environment variables.
fn connection(server: &MockServer, streams: &[&str]) -> (Connection, String) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (email_var, token_var) = (format!("ZD_EMAIL_{suffix}"), format!("ZD_TOKEN_{suffix}"));
    let token = format!("zdtok-{}", uuid::Uuid::new_v4().simple());
    // SAFETY: each test sets its own uniquely named variables; no test reads another's.
    unsafe {
        std::env::set_var(&email_var, "ops@example.com");
        std::env::set_var(&token_var, &token);
    }
    let mut options = toml::Table::new();
    options.insert("min_backoff_ms".into(), 10.into());
    options.insert("page_size".into(), 2.into());
    let c = Connection {
        name: "support".into(),
        source: "zendesk".into(),
        base_url: Some(server.uri()),
        credentials: BTreeMap::from([
            ("email".to_string(), email_var),
            ("api_token".to_string(), token_var),
        ]),
        streams: streams.iter().map(|s| s.to_string()).collect(),
        request_budget: None,
        options,
    };
    (c, token)
}

fn ticket(id: i64, status: &str, organization: Option<i64>, updated_at: &str) -> Value {
    json!({
        "id": id, "url": format!("https://acme.zendesk.com/api/v2/tickets/{id}.json"),
        "subject": format!("Ticket {id}"), "status": status, "priority": "normal",
        "requester_id": 100 + id, "submitter_id": 100 + id, "assignee_id": 7,
        "organization_id": organization, "group_id": 3, "tags": ["billing"],
        "via": {"channel": "email"}, "created_at": "2025-01-01T09:00:00Z",
        "updated_at": updated_at, "generated_timestamp": 1_735_722_000
    })
}

/// A cursor-export page; `next` is the cursor of the page after it.
fn cursor_page(
    server: &MockServer,
    tickets: Vec<Value>,
    next: &str,
    end: bool,
) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "tickets": tickets,
        "after_url": format!("{}{TICKETS}?cursor={next}", server.uri()),
        "after_cursor": next,
        "before_url": null, "before_cursor": null,
        "end_of_stream": end
    }))
}

/// Tickets over two cursor pages, the first from `start_time=0`.
async fn mount_first_export(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(TICKETS))
        .and(query_param("start_time", "0"))
        .and(query_param("per_page", "2"))
        .respond_with(cursor_page(
            server,
            vec![
                ticket(1, "open", Some(55), "2025-01-02T10:00:00Z"),
                ticket(2, "pending", None, "2025-01-04T10:00:00Z"),
            ],
            "c2",
            false,
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(TICKETS))
        .and(query_param("cursor", "c2"))
        .respond_with(cursor_page(
            server,
            vec![ticket(3, "deleted", Some(56), "2025-01-03T10:00:00Z")],
            "c3",
            true,
        ))
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_cursor_export_lands_tickets_with_organizations_and_tombstones() {
    let server = MockServer::start().await;
    mount_first_export(&server).await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["tickets"]);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    // The last page's `after_url` (c3) is where a later export resumes: not followed.
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, status, requester_id, organization_id, _deleted \
         FROM raw.zendesk_tickets ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "1,open,101,55,false",
            "2,pending,102,,false",
            "3,deleted,103,56,true"
        ]
    );
    // Pages are not in updated_at order: the cursor is the largest, set at the end.
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_starts_at_the_stored_cursor() {
    let server = MockServer::start().await;
    mount_first_export(&server).await;
    // 2025-01-04T10:00:00Z
    Mock::given(method("GET"))
        .and(path(TICKETS))
        .and(query_param("start_time", "1735984800"))
        .respond_with(cursor_page(
            &server,
            vec![
                ticket(2, "solved", Some(57), "2025-01-06T10:00:00Z"),
                ticket(4, "new", Some(55), "2025-01-05T10:00:00Z"),
            ],
            "c9",
            true,
        ))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["tickets"]);
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 2);
    let got = query(
        &lake,
        "SELECT id, status, organization_id FROM raw.zendesk_tickets ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        ["1,open,55", "2,solved,57", "3,deleted,56", "4,new,55"]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-06T10:00:00+00:00")
    );
}

#[tokio::test]
async fn organizations_follow_next_page_until_the_end_of_the_stream() {
    let server = MockServer::start().await;
    let org = |id: i64, name: &str, deleted_at: Option<&str>, updated_at: &str| {
        json!({"id": id, "name": name, "domain_names": [format!("{}.com", name.to_lowercase())],
               "created_at": "2024-12-01T00:00:00Z", "updated_at": updated_at,
               "deleted_at": deleted_at, "external_id": null})
    };
    let orgs = "/api/v2/incremental/organizations.json";
    Mock::given(method("GET"))
        .and(path(orgs))
        .and(query_param("start_time", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "organizations": [org(55, "Acme", None, "2025-01-02T10:00:00Z"),
                              org(56, "Globex", Some("2025-01-03T09:00:00Z"), "2025-01-03T09:00:00Z")],
            "next_page": format!("{}{orgs}?start_time=1735894800", server.uri()),
            "count": 2, "end_time": 1_735_894_800, "end_of_stream": false
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(orgs))
        .and(query_param("start_time", "1735894800"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "organizations": [org(57, "Initech", None, "2025-01-03T09:00:00Z")],
            "next_page": format!("{}{orgs}?start_time=1735894801", server.uri()),
            "count": 1, "end_time": 1_735_894_801, "end_of_stream": true
        })))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["organizations"]);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.pages, 2);
    let got = query(
        &lake,
        "SELECT id, name, _deleted FROM raw.zendesk_organizations ORDER BY id",
    )
    .await;
    assert_eq!(got, ["55,Acme,false", "56,Globex,true", "57,Initech,false"]);
}

#[tokio::test]
async fn a_429_with_retry_after_and_a_503_are_retried() {
    let server = MockServer::start().await;
    let users = "/api/v2/incremental/users/cursor.json";
    Mock::given(method("GET"))
        .and(path(users))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_string("Rate limit for incremental exports exceeded"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(users))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(users))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "users": [{"id": 101, "name": "Ann", "email": "ann@acme.com", "organization_id": 55,
                       "role": "end-user", "active": true, "updated_at": "2025-01-02T10:00:00Z"}],
            "after_url": format!("{}{users}?cursor=u2", server.uri()), "after_cursor": "u2",
            "end_of_stream": true
        })))
        .with_priority(3)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["users"]);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    let got = query(
        &lake,
        "SELECT id, email, organization_id FROM raw.zendesk_users",
    )
    .await;
    assert_eq!(got, ["101,ann@acme.com,55"]);
}

#[tokio::test]
async fn a_malformed_page_commits_nothing_and_keeps_the_cursor() {
    let server = MockServer::start().await;
    mount_first_export(&server).await;
    // The second sync's first page is good, its second is cut short.
    Mock::given(method("GET"))
        .and(path(TICKETS))
        .and(query_param("start_time", "1735984800"))
        .respond_with(cursor_page(
            &server,
            vec![ticket(4, "new", Some(55), "2025-01-05T10:00:00Z")],
            "bad",
            false,
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TICKETS))
        .and(query_param("cursor", "bad"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"tickets\": [{\"id\": 5,"))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, token) = connection(&server, &["tickets"]);
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    let error = second.error.expect("the stream fails");
    assert!(
        error.contains("malformed page") && error.contains("cursor=bad"),
        "{error}"
    );
    assert!(!error.contains(&token), "{error}");
    assert_eq!(count(&lake, "raw.zendesk_tickets").await, 3);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn a_refused_token_names_its_variable_never_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": "Couldn't authenticate you"})),
        )
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, token) = connection(&server, &["tickets"]);
    let o = sync_acme(&lake, &c).await;
    let error = o.error.expect("401 fails");
    assert!(error.contains("not authorized"), "{error}");
    assert!(error.contains(&c.credentials["api_token"]), "{error}");
    assert!(!error.contains(&token), "{error}");

    // Neither a subdomain nor a base URL: the connection says which to set.
    let mut nowhere = c.clone();
    nowhere.base_url = None;
    let e = registry::open(&nowhere).err().expect("no host").to_string();
    assert!(e.contains("subdomain"), "{e}");
}

#[tokio::test]
async fn basic_auth_sends_the_email_as_a_token_user() {
    let server = MockServer::start().await;
    let (c, token) = connection(&server, &["tickets"]);
    Mock::given(method("GET"))
        .and(path(TICKETS))
        .and(basic_auth("ops@example.com/token", token.as_str()))
        .respond_with(cursor_page(&server, vec![], "c1", true))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
}
