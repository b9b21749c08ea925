//! The Chargebee connector against a mock of its API on 127.0.0.1: `offset`/`next_offset`
//! paging, wrapped list items, deleted records as tombstones, `updated_at[after]` incremental
//! syncs, retries, a malformed page and a refused key.

use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

/// 2025-01-04T10:00:00Z.
const JAN_4: i64 = 1_735_984_800;
const DAY: i64 = 86_400;
const OFFSET: &str = r#"["1735984800000","cus_2"]"#;

fn customer(id: &str, email: &str, updated_at: i64, deleted: bool) -> Value {
    json!({"customer": {
        "id": id, "email": email, "company": "Acme", "auto_collection": "on",
        "net_term_days": 0, "created_at": JAN_4 - 10 * DAY, "updated_at": updated_at,
        "resource_version": updated_at * 1000, "deleted": deleted, "object": "customer",
        "preferred_currency_code": "USD", "billing_address": {"country": "US"}
    }})
}

async fn mount_first_sync(server: &MockServer, key: &str) {
    Mock::given(method("GET"))
        .and(path("/customers"))
        .and(basic_auth(key, ""))
        .and(query_param("limit", "2"))
        .and(query_param("sort_by[asc]", "updated_at"))
        .and(query_param("include_deleted", "true"))
        .and(query_param_is_missing("offset"))
        .and(query_param_is_missing("updated_at[after]"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "list": [customer("cus_1", "ann@acme.com", JAN_4 - DAY, false),
                     customer("cus_2", "bob@globex.com", JAN_4, false)],
            "next_offset": OFFSET
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/customers"))
        .and(query_param("offset", OFFSET))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "list": [customer("cus_3", "cy@initech.com", JAN_4 + DAY, true)]
        })))
        .mount(server)
        .await;
}

fn chargebee(
    server: &MockServer,
    streams: &[&str],
) -> (revlake::sources::source::Connection, String) {
    let (c, secrets) = connection(
        server,
        "chargebee",
        &["api_key"],
        streams,
        &[("page_size", 2.into())],
    );
    (c, secrets["api_key"].clone())
}

#[tokio::test]
async fn customers_page_by_next_offset_with_deleted_ones_as_tombstones() {
    let server = MockServer::start().await;
    let (c, key) = chargebee(&server, &["customers"]);
    mount_first_sync(&server, &key).await;
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, email, updated_at, _deleted FROM raw.chargebee_customers ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "cus_1,ann@acme.com,2025-01-03T10:00:00Z,false",
            "cus_2,bob@globex.com,2025-01-04T10:00:00Z,false",
            "cus_3,cy@initech.com,2025-01-05T10:00:00Z,true",
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T10:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_asks_for_updated_at_after_the_cursor() {
    let server = MockServer::start().await;
    let (c, key) = chargebee(&server, &["customers"]);
    mount_first_sync(&server, &key).await;
    Mock::given(method("GET"))
        .and(path("/customers"))
        .and(query_param(
            "updated_at[after]",
            (JAN_4 + DAY - 1).to_string(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "list": [customer("cus_1", "ann@new.com", JAN_4 + 2 * DAY, false)]
        })))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 1);
    let got = query(
        &lake,
        "SELECT id, email FROM raw.chargebee_customers ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "cus_1,ann@new.com",
            "cus_2,bob@globex.com",
            "cus_3,cy@initech.com"
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-06T10:00:00+00:00")
    );
}

#[tokio::test]
async fn subscriptions_land_amounts_after_a_429_and_a_500() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/subscriptions"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({
            "message": "Sorry, access has been blocked temporarily due to request count exceeding acceptable limits.",
            "api_error_code": "api_request_limit_exceeded", "http_status_code": 429
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subscriptions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"message": "internal error", "api_error_code": "internal_error"}),
        ))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "list": [{"subscription": {
                "id": "sub_1", "customer_id": "cus_1", "status": "active", "currency_code": "EUR",
                "mrr": 49900, "billing_period": 1, "billing_period_unit": "month",
                "current_term_start": JAN_4, "current_term_end": JAN_4 + 31 * DAY,
                "created_at": JAN_4, "updated_at": JAN_4, "deleted": false,
                "subscription_items": [{"item_price_id": "pro-EUR-monthly", "quantity": 1, "unit_price": 49900}]
            }, "customer": {"id": "cus_1"}}]
        })))
        .with_priority(3)
        .mount(&server)
        .await;
    let (c, _) = chargebee(&server, &["subscriptions"]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    let got = query(
        &lake,
        "SELECT id, customer_id, status, mrr, currency_code, current_term_end FROM raw.chargebee_subscriptions",
    )
    .await;
    assert_eq!(got, ["sub_1,cus_1,active,49900,EUR,2025-02-04T10:00:00Z"]);
}

#[tokio::test]
async fn a_malformed_page_commits_nothing_and_keeps_the_cursor() {
    let server = MockServer::start().await;
    let (c, key) = chargebee(&server, &["customers"]);
    mount_first_sync(&server, &key).await;
    Mock::given(method("GET"))
        .and(path("/customers"))
        .and(query_param(
            "updated_at[after]",
            (JAN_4 + DAY - 1).to_string(),
        ))
        .and(query_param_is_missing("offset"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "list": [customer("cus_4", "di@acme.com", JAN_4 + 2 * DAY, false)],
            "next_offset": "bad"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/customers"))
        .and(query_param("offset", "bad"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"list": [{"invoice": {"id": "x"}}]})),
        )
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert_malformed(&second, &key);
    assert!(second.error.unwrap().contains("no `customer`"));
    assert_eq!(count(&lake, "raw.chargebee_customers").await, 3);
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T10:00:00+00:00")
    );
}

#[tokio::test]
async fn a_refused_key_names_its_variable_never_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "Sorry, authentication failed. Invalid api key",
            "api_error_code": "api_authentication_failed", "http_status_code": 401
        })))
        .mount(&server)
        .await;
    let (c, key) = chargebee(&server, &["invoices"]);
    let lake = memory_lake().await;
    assert_refused(&sync_acme(&lake, &c).await, &c, "api_key", &key);

    // Neither a site nor a base URL: the connection says which to set.
    let mut nowhere = c.clone();
    nowhere.base_url = None;
    let e = revlake::sources::registry::open(&nowhere)
        .err()
        .expect("no host")
        .to_string();
    assert!(e.contains("options.site"), "{e}");
}
