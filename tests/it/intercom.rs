//! The Intercom connector against a mock of its API on 127.0.0.1: list paging by
//! `pages.next.starting_after`, incremental syncs through the search endpoints (the cursor in
//! the body), companies by `pages.next` URL, retries, a malformed page and a refused token.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

/// 2025-01-04T10:00:00Z.
const JAN_4: i64 = 1_735_984_800;
const DAY: i64 = 86_400;

fn contact(id: &str, email: &str, company: &str, updated_at: i64) -> Value {
    json!({
        "type": "contact", "id": id, "role": "user", "email": email, "name": email.split('@').next(),
        "created_at": JAN_4 - 10 * DAY, "updated_at": updated_at, "last_seen_at": null,
        "companies": {"type": "list", "data": [{"type": "company", "id": company}], "total_count": 1},
        "custom_attributes": {}
    })
}

fn list(data: Vec<Value>, next: Option<&str>) -> ResponseTemplate {
    let mut pages = json!({"type": "pages", "page": 1, "per_page": 2, "total_pages": 2});
    if let Some(n) = next {
        pages["next"] = json!({"page": 2, "starting_after": n});
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "type": "list", "data": data, "total_count": 3, "pages": pages
    }))
}

async fn mount_first_sync(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/contacts"))
        .and(query_param("per_page", "2"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(list(
            vec![
                contact("c1", "ann@acme.com", "co55", JAN_4 - 2 * DAY),
                contact("c2", "bob@globex.com", "co56", JAN_4),
            ],
            Some("WzE3MzU5ODQ4MDAwMDAsImMyIl0="),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts"))
        .and(query_param(
            "starting_after",
            "WzE3MzU5ODQ4MDAwMDAsImMyIl0=",
        ))
        .respond_with(list(
            vec![contact("c3", "cy@initech.com", "co57", JAN_4 - DAY)],
            None,
        ))
        .mount(server)
        .await;
}

#[tokio::test]
async fn contacts_page_by_starting_after_and_land_company_ids() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    let (c, _) = connection(
        &server,
        "intercom",
        &["access_token"],
        &["contacts"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, email, company_ids, updated_at FROM raw.intercom_contacts ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"c1,ann@acme.com,["co55"],2025-01-02T10:00:00Z"#,
            r#"c2,bob@globex.com,["co56"],2025-01-04T10:00:00Z"#,
            r#"c3,cy@initech.com,["co57"],2025-01-03T10:00:00Z"#,
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_searches_updated_at_with_the_cursor_in_the_body() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("POST"))
        .and(path("/contacts/search"))
        .and(body_partial_json(json!({
            "query": {"field": "updated_at", "operator": ">", "value": JAN_4 - 1},
            "pagination": {"per_page": 2}
        })))
        .and(|r: &wiremock::Request| {
            let b: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            b.pointer("/pagination/starting_after").is_none()
        })
        .respond_with(list(
            vec![contact("c2", "bob@globex.com", "co58", JAN_4 + DAY)],
            Some("s2"),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/contacts/search"))
        .and(body_partial_json(
            json!({"pagination": {"per_page": 2, "starting_after": "s2"}}),
        ))
        .respond_with(list(
            vec![contact("c4", "di@acme.com", "co55", JAN_4 + 2 * DAY)],
            None,
        ))
        .mount(&server)
        .await;
    let (c, _) = connection(
        &server,
        "intercom",
        &["access_token"],
        &["contacts"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!((second.records, second.pages), (2, 2));
    let got = query(
        &lake,
        "SELECT id, company_ids FROM raw.intercom_contacts ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"c1,["co55"]"#,
            r#"c2,["co58"]"#,
            r#"c3,["co57"]"#,
            r#"c4,["co55"]"#
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-06T10:00:00+00:00")
    );
}

#[tokio::test]
async fn conversations_land_author_emails_after_a_429_and_a_503() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/conversations"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"type": "error.list", "errors": [{"code": "rate_limit_exceeded", "message": "Exceeded rate limit"}]})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "conversation.list",
            "conversations": [{
                "type": "conversation", "id": "147", "title": null, "state": "open", "open": true,
                "created_at": JAN_4, "updated_at": JAN_4 + 60, "waiting_since": JAN_4 + 60,
                "source": {"type": "email", "subject": "Pricing question",
                           "author": {"type": "lead", "id": "c1", "email": "ann@acme.com"}},
                "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": "c1"}]},
                "admin_assignee_id": 814860
            }],
            "pages": {"type": "pages", "page": 1, "per_page": 150, "total_pages": 1}
        })))
        .with_priority(3)
        .mount(&server)
        .await;
    let (c, _) = connection(
        &server,
        "intercom",
        &["access_token"],
        &["conversations"],
        &[],
    );
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    let got = query(
        &lake,
        "SELECT id, state, author_email, contact_ids, admin_assignee_id FROM raw.intercom_conversations",
    )
    .await;
    assert_eq!(got, [r#"147,open,ann@acme.com,["c1"],814860"#]);
}

#[tokio::test]
async fn companies_follow_the_next_page_url() {
    let server = MockServer::start().await;
    let company = |id: &str, name: &str| {
        json!({"type": "company", "id": id, "company_id": format!("crm-{id}"), "name": name,
               "website": format!("https://{}.com", name.to_lowercase()), "size": 40,
               "monthly_spend": 1200.5, "created_at": JAN_4, "updated_at": JAN_4})
    };
    Mock::given(method("GET"))
        .and(path("/companies"))
        .and(query_param_is_missing("page"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "data": [company("co55", "Acme")], "total_count": 2,
            "pages": {"type": "pages", "page": 1, "per_page": 1, "total_pages": 2,
                      "next": format!("{}/companies?per_page=1&page=2", server.uri())}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/companies"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "data": [company("co56", "Globex")], "total_count": 2,
            "pages": {"type": "pages", "page": 2, "per_page": 1, "total_pages": 2, "next": null}
        })))
        .mount(&server)
        .await;
    let (c, _) = connection(&server, "intercom", &["access_token"], &["companies"], &[]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    let got = query(
        &lake,
        "SELECT id, name, monthly_spend FROM raw.intercom_companies ORDER BY id",
    )
    .await;
    assert_eq!(got, ["co55,Acme,1200.5", "co56,Globex,1200.5"]);
}

#[tokio::test]
async fn a_malformed_page_commits_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(list(
            vec![contact("c1", "ann@acme.com", "co55", JAN_4)],
            Some("next"),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts"))
        .and(query_param("starting_after", "next"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"type": "list", "data": "oops"})),
        )
        .mount(&server)
        .await;
    let (c, secrets) = connection(&server, "intercom", &["access_token"], &["contacts"], &[]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert_malformed(&o, &secrets["access_token"]);
    assert!(
        o.error.as_deref().unwrap().contains("starting_after=next"),
        "{:?}",
        o.error
    );
    assert_eq!((o.records, o.failed), (0, 1));
    assert!(acme_cursor(&lake, &c).await.is_none());
    // Nothing was committed: the raw table was never created.
    let dataset = "raw.intercom_contacts".parse().unwrap();
    assert!(lake.info(&dataset).await.is_err());
}

#[tokio::test]
async fn a_refused_token_names_its_variable_never_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "type": "error.list", "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]
        })))
        .mount(&server)
        .await;
    let (c, secrets) = connection(&server, "intercom", &["access_token"], &["contacts"], &[]);
    let lake = memory_lake().await;
    assert_refused(
        &sync_acme(&lake, &c).await,
        &c,
        "access_token",
        &secrets["access_token"],
    );
}
