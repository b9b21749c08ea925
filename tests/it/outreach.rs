//! The Outreach connector against a mock of its JSON:API on 127.0.0.1: `links.next` paging,
//! relationship ids, `filter[updatedAt]=<cursor>..inf` incremental syncs, retries, a
//! malformed page and a refused token.

use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

fn prospect(id: i64, email: &str, account: i64, updated_at: &str) -> Value {
    json!({
        "type": "prospect", "id": id,
        "attributes": {"firstName": email.split('@').next(), "lastName": "Doe",
                       "emails": [email], "title": "VP Sales",
                       "createdAt": "2025-01-01T09:00:00.000Z", "updatedAt": updated_at},
        "relationships": {
            "account": {"data": {"type": "account", "id": account}},
            "owner": {"data": {"type": "user", "id": 3}},
            "sequenceStates": {"data": [{"type": "sequenceState", "id": 900 + id}]}
        },
        "links": {"self": format!("https://api.outreach.io/api/v2/prospects/{id}")}
    })
}

fn collection(data: Vec<Value>, next: Option<String>) -> ResponseTemplate {
    let mut links = json!({"first": "https://api.outreach.io/api/v2/prospects"});
    if let Some(next) = next {
        links["next"] = json!(next);
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "data": data, "links": links, "meta": {"count": 3}
    }))
}

async fn mount_first_sync(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/prospects"))
        .and(query_param("page[size]", "2"))
        .and(query_param("sort", "updatedAt"))
        .and(query_param_is_missing("filter[updatedAt]"))
        .and(query_param_is_missing("page[after]"))
        .respond_with(collection(
            vec![
                prospect(1, "ann@acme.com", 55, "2025-01-02T10:00:00.000Z"),
                prospect(2, "bob@globex.com", 56, "2025-01-03T10:00:00.000Z"),
            ],
            Some(format!(
                "{}/prospects?page%5Bsize%5D=2&sort=updatedAt&page%5Bafter%5D=WzJd",
                server.uri()
            )),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prospects"))
        .and(query_param("page[after]", "WzJd"))
        .respond_with(collection(
            vec![prospect(
                3,
                "cy@initech.com",
                57,
                "2025-01-04T10:00:00.000Z",
            )],
            None,
        ))
        .mount(server)
        .await;
}

#[tokio::test]
async fn prospects_follow_links_next_and_land_relationship_ids() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    let (c, _) = connection(
        &server,
        "outreach",
        &["access_token"],
        &["prospects"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, first_name, emails, account_id, owner_id, sequence_states_ids \
         FROM raw.outreach_prospects ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"1,ann,["ann@acme.com"],55,3,[901]"#,
            r#"2,bob,["bob@globex.com"],56,3,[902]"#,
            r#"3,cy,["cy@initech.com"],57,3,[903]"#,
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_filters_from_the_stored_cursor() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("GET"))
        .and(path("/prospects"))
        .and(query_param(
            "filter[updatedAt]",
            "2025-01-04T10:00:00Z..inf",
        ))
        .respond_with(collection(
            vec![
                prospect(3, "cy@initech.com", 57, "2025-01-04T10:00:00.000Z"),
                prospect(1, "ann@acme.com", 58, "2025-01-06T10:00:00.000Z"),
            ],
            None,
        ))
        .mount(&server)
        .await;
    let (c, _) = connection(
        &server,
        "outreach",
        &["access_token"],
        &["prospects"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 2);
    let got = query(
        &lake,
        "SELECT id, account_id FROM raw.outreach_prospects ORDER BY id",
    )
    .await;
    assert_eq!(got, ["1,58", "2,56", "3,57"]);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-06T10:00:00+00:00")
    );
}

#[tokio::test]
async fn mailings_land_engagement_after_a_429_and_a_502() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/mailings"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"errors": [{"id": "rateLimitExceeded", "title": "Rate Limit Exceeded"}]})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/mailings"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let (c, secrets) = connection(&server, "outreach", &["access_token"], &["mailings"], &[]);
    Mock::given(method("GET"))
        .and(path("/mailings"))
        .and(bearer_token(secrets["access_token"].as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{
                "type": "mailing", "id": 70,
                "attributes": {"subject": "Quick question", "mailingType": "sequence",
                               "openCount": 3, "clickCount": 1,
                               "openedAt": "2025-01-02T11:00:00.000Z", "clickedAt": null,
                               "repliedAt": "2025-01-02T12:00:00.000Z",
                               "deliveredAt": "2025-01-02T10:00:05.000Z",
                               "updatedAt": "2025-01-02T12:00:00.000Z"},
                "relationships": {"prospect": {"data": {"type": "prospect", "id": 1}},
                                  "sequence": {"data": {"type": "sequence", "id": 4}},
                                  "mailbox": {"data": {"type": "mailbox", "id": 2}}}
            }],
            "links": {}
        })))
        .with_priority(3)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    let got = query(
        &lake,
        "SELECT id, open_count, click_count, replied_at, prospect_id, sequence_id \
         FROM raw.outreach_mailings",
    )
    .await;
    assert_eq!(got, ["70,3,1,2025-01-02T12:00:00Z,1,4"]);
}

#[tokio::test]
async fn a_malformed_page_commits_nothing_and_keeps_the_cursor() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("GET"))
        .and(path("/prospects"))
        .and(query_param(
            "filter[updatedAt]",
            "2025-01-04T10:00:00Z..inf",
        ))
        .respond_with(collection(
            vec![prospect(4, "di@acme.com", 55, "2025-01-05T10:00:00.000Z")],
            Some(format!("{}/prospects?page%5Bafter%5D=bad", server.uri())),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prospects"))
        .and(query_param("page[after]", "bad"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"id": 5}})))
        .mount(&server)
        .await;
    let (c, secrets) = connection(
        &server,
        "outreach",
        &["access_token"],
        &["prospects"],
        &[("page_size", 2.into())],
    );
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert_malformed(&second, &secrets["access_token"]);
    assert!(second.error.unwrap().contains("page%5Bafter%5D=bad"));
    assert_eq!(count(&lake, "raw.outreach_prospects").await, 3);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn a_refused_token_names_its_variable_never_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errors": [{"id": "unauthorizedOauthToken", "title": "Unauthorized OAuth Token",
                        "detail": "The OAuth token is invalid"}]
        })))
        .mount(&server)
        .await;
    let (c, secrets) = connection(&server, "outreach", &["access_token"], &["calls"], &[]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert_refused(&o, &c, "access_token", &secrets["access_token"]);
}
