//! The Stripe connector against a mock of its API on 127.0.0.1: `has_more` + `starting_after`
//! pages listed newest first, `created[gte]` incremental syncs, `*.deleted` events as
//! tombstones, the events stream, retries, a malformed page and a refused key.

use std::collections::BTreeMap;

use revlake::lake::DatasetRef;
use revlake::sources::registry;
use revlake::sources::source::Connection;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};

/// 2025-01-05T00:00:00Z and the days after it, in epoch seconds.
const JAN_5: i64 = 1_736_035_200;
const DAY: i64 = 86_400;

/// A connection to `server` whose secret key is in a fresh environment variable.
fn connection(server: &MockServer, streams: &[&str]) -> (Connection, String) {
    let var = format!("STRIPE_KEY_{}", uuid::Uuid::new_v4().simple());
    let key = format!("sk_test_{}", uuid::Uuid::new_v4().simple());
    // SAFETY: each test sets its own uniquely named variable; no test reads another's.
    unsafe { std::env::set_var(&var, &key) };
    let mut options = toml::Table::new();
    options.insert("min_backoff_ms".into(), 10.into());
    options.insert("page_size".into(), 2.into());
    let c = Connection {
        name: "billing".into(),
        source: "stripe".into(),
        base_url: Some(server.uri()),
        credentials: BTreeMap::from([("api_key".to_string(), var)]),
        streams: streams.iter().map(|s| s.to_string()).collect(),
        request_budget: None,
        options,
    };
    (c, key)
}

fn customer(id: &str, email: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "customer", "email": email, "name": email.split('@').next(),
        "balance": 0, "currency": "usd", "created": created, "delinquent": false,
        "livemode": false, "metadata": {"crm_id": "001A"}
    })
}

fn charge(id: &str, amount: i64, currency: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "charge", "amount": amount, "amount_refunded": 0,
        "currency": currency, "customer": "cus_1", "paid": true, "status": "succeeded",
        "created": created, "outcome": {"type": "authorized"}
    })
}

fn list(url: &str, data: Vec<Value>, has_more: bool) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "object": "list", "url": url, "has_more": has_more, "data": data
    }))
}

/// No deletion events of `kind`.
async fn mount_no_deletions(server: &MockServer, kind: &str) {
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("type", kind))
        .respond_with(list("/v1/events", vec![], false))
        .mount(server)
        .await;
}

#[tokio::test]
async fn pages_newest_first_land_with_deletions_as_tombstones() {
    let server = MockServer::start().await;
    let (c, key) = connection(&server, &["customers"]);
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("limit", "2"))
        .and(query_param_is_missing("starting_after"))
        .and(query_param_is_missing("created[gte]"))
        .and(header("authorization", format!("Bearer {key}").as_str()))
        .respond_with(list(
            "/v1/customers",
            vec![
                customer("cus_3", "c@initech.com", JAN_5 + 2 * DAY),
                customer("cus_2", "b@globex.com", JAN_5 + DAY),
            ],
            true,
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("starting_after", "cus_2"))
        .respond_with(list(
            "/v1/customers",
            vec![customer("cus_1", "a@acme.com", JAN_5)],
            false,
        ))
        .mount(&server)
        .await;
    // A customer deleted after the others were created: its deletion time is later than any
    // creation time, and must not become the cursor.
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("type", "customer.deleted"))
        .respond_with(list(
            "/v1/events",
            vec![json!({
                "id": "evt_9", "object": "event", "type": "customer.deleted",
                "created": JAN_5 + 9 * DAY,
                "data": {"object": customer("cus_2", "b@globex.com", JAN_5 + DAY)}
            })],
            false,
        ))
        .mount(&server)
        .await;

    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (4, 3));
    let got = query(
        &lake,
        "SELECT id, email, _deleted, CAST(created AS VARCHAR) \
         FROM raw.stripe_customers ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "cus_1,a@acme.com,false,2025-01-05T00:00:00Z",
            "cus_2,b@globex.com,true,2025-01-06T00:00:00Z",
            "cus_3,c@initech.com,false,2025-01-07T00:00:00Z",
        ]
    );
    // The newest creation time, moved once the whole (unordered) stream was read.
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-07T00:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_asks_for_objects_created_since_the_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .and(query_param_is_missing("created[gte]"))
        .respond_with(list(
            "/v1/charges",
            vec![
                charge("ch_2", 125_000, "jpy", JAN_5 + DAY),
                charge("ch_1", 4_999, "usd", JAN_5),
            ],
            false,
        ))
        .mount(&server)
        .await;
    let since = (JAN_5 + DAY).to_string();
    Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .and(query_param("created[gte]", since.as_str()))
        .respond_with(list(
            "/v1/charges",
            vec![
                charge("ch_3", 1_050, "eur", JAN_5 + 3 * DAY),
                charge("ch_2", 125_000, "jpy", JAN_5 + DAY),
            ],
            false,
        ))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["charges"]);
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(
        second.cursor_before.unwrap().to_rfc3339(),
        "2025-01-06T00:00:00+00:00"
    );
    assert_eq!(second.records, 2);
    // Amounts land as Stripe sends them: integer minor units beside the currency.
    let got = query(
        &lake,
        "SELECT id, amount, currency, arrow_typeof(amount) FROM raw.stripe_charges ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "ch_1,4999,usd,Int64",
            "ch_2,125000,jpy,Int64",
            "ch_3,1050,eur,Int64"
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-08T00:00:00+00:00")
    );
}

#[tokio::test]
async fn events_land_with_their_objects_id_and_type() {
    let server = MockServer::start().await;
    let event = |id: &str, kind: &str, object: Value, created: i64| {
        json!({"id": id, "object": "event", "type": kind, "created": created,
               "api_version": "2024-06-20", "data": {"object": object}})
    };
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param_is_missing("type"))
        .respond_with(list(
            "/v1/events",
            vec![
                event(
                    "evt_2",
                    "customer.deleted",
                    customer("cus_1", "a@acme.com", JAN_5),
                    JAN_5 + 2 * DAY,
                ),
                event(
                    "evt_1",
                    "invoice.paid",
                    json!({"id": "in_1", "object": "invoice", "amount_paid": 4999, "currency": "usd"}),
                    JAN_5 + DAY,
                ),
            ],
            false,
        ))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["events"]);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    let got = query(
        &lake,
        "SELECT id, type, object_id, object_type, _deleted FROM raw.stripe_events ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "evt_1,invoice.paid,in_1,invoice,false",
            "evt_2,customer.deleted,cus_1,customer,false",
        ]
    );
}

#[tokio::test]
async fn a_429_with_retry_after_and_a_500_are_retried() {
    let server = MockServer::start().await;
    mount_no_deletions(&server, "invoice.deleted").await;
    Mock::given(method("GET"))
        .and(path("/v1/invoices"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(
                    json!({"error": {"type": "invalid_request_error", "code": "rate_limit",
                    "message": "Too many requests hit the API too quickly."}}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/invoices"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}),
        ))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/invoices"))
        .respond_with(list(
            "/v1/invoices",
            vec![
                json!({"id": "in_1", "object": "invoice", "customer": "cus_1",
                        "amount_due": 4999, "currency": "usd", "status": "open",
                        "created": JAN_5, "period_end": JAN_5 + DAY}),
            ],
            false,
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, _) = connection(&server, &["invoices"]);
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    assert_eq!(count(&lake, "raw.stripe_invoices").await, 1);
    let got = query(
        &lake,
        "SELECT amount_due, CAST(period_end AS VARCHAR) FROM raw.stripe_invoices",
    )
    .await;
    assert_eq!(got, ["4999,2025-01-06T00:00:00Z"]);
}

#[tokio::test]
async fn a_malformed_page_commits_nothing_and_keeps_the_cursor() {
    let server = MockServer::start().await;
    mount_no_deletions(&server, "customer.deleted").await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(list(
            "/v1/customers",
            vec![
                customer("cus_3", "c@initech.com", JAN_5 + 2 * DAY),
                customer("cus_2", "b@globex.com", JAN_5 + DAY),
            ],
            true,
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("starting_after", "cus_2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"object": "list", "has_more": false, "data": {"id": "cus_1"}}),
            ),
        )
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, key) = connection(&server, &["customers"]);
    let o = sync_acme(&lake, &c).await;
    let error = o.error.expect("the stream fails");
    assert!(
        error.contains("malformed page") && error.contains("starting_after=cus_2"),
        "{error}"
    );
    assert!(!error.contains(&key), "{error}");
    let raw: DatasetRef = "raw.stripe_customers".parse().unwrap();
    assert!(lake.try_load(&raw).await.unwrap().is_none());
    assert_eq!(acme_cursor(&lake, &c).await, None);
    let log = query(&lake, "SELECT status, records_failed FROM ops.sync_log").await;
    assert_eq!(log, ["failed,2"]);
}

#[tokio::test]
async fn a_refused_key_names_its_variable_never_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "type": "invalid_request_error",
            "message": "Invalid API Key provided: sk_test_****************abcd"}})))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let (c, key) = connection(&server, &["refunds"]);
    let o = sync_acme(&lake, &c).await;
    let error = o.error.expect("401 fails");
    assert!(error.contains("not authorized"), "{error}");
    assert!(error.contains(&c.credentials["api_key"]), "{error}");
    assert!(!error.contains(&key), "{error}");

    let mut missing = c.clone();
    missing
        .credentials
        .insert("api_key".into(), "STRIPE_KEY_NOT_SET_ANYWHERE".into());
    let e = registry::open(&missing).err().expect("missing").to_string();
    assert!(e.contains("STRIPE_KEY_NOT_SET_ANYWHERE"), "{e}");
}
