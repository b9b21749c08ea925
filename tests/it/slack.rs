//! The Slack connector against a mock of its Web API on 127.0.0.1: `next_cursor` paging,
//! channel names resolved to ids, messages of chosen channels with `oldest` incremental syncs,
//! errors answered as HTTP 200 `"ok": false`, tiered 429s, a malformed page.

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

fn ok(mut body: Value, next: &str) -> ResponseTemplate {
    body["ok"] = json!(true);
    body["response_metadata"] = json!({"next_cursor": next});
    ResponseTemplate::new(200).set_body_json(body)
}

fn channel(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "is_channel": true, "is_private": false, "is_archived": false,
           "created": 1_735_000_000, "num_members": 4, "topic": {"value": "Acme deal"}})
}

fn message(ts: &str, user: &str, text: &str) -> Value {
    json!({"type": "message", "user": user, "text": text, "ts": ts, "reply_count": 0})
}

async fn mount_channels(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ok(
            json!({"channels": [channel("C0ACME0001", "deal-acme")]}),
            "dGVhbTpDMDI=",
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(query_param("cursor", "dGVhbTpDMDI="))
        .respond_with(ok(
            json!({"channels": [channel("C0GLOBEX02", "deal-globex")]}),
            "",
        ))
        .mount(server)
        .await;
}

/// Two channels' history: one page for Globex, two for Acme (whose first is the newest).
async fn mount_history(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("channel", "C0ACME0001"))
        .and(query_param_is_missing("cursor"))
        .and(query_param_is_missing("oldest"))
        .respond_with(ok(
            json!({"messages": [message("1736035200.000300", "U1", "Sent the proposal")], "has_more": true}),
            "bmV4dA==",
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("channel", "C0ACME0001"))
        .and(query_param("cursor", "bmV4dA=="))
        .respond_with(ok(
            json!({"messages": [message("1735948800.000100", "U2", "Kickoff")], "has_more": false}),
            "",
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("channel", "C0GLOBEX02"))
        .and(query_param_is_missing("oldest"))
        .respond_with(ok(
            json!({"messages": [message("1735990000.000000", "U1", "Pricing call")], "has_more": false}),
            "",
        ))
        .mount(server)
        .await;
}

fn slack(server: &MockServer, streams: &[&str]) -> (revlake::sources::source::Connection, String) {
    let channels = toml::Value::Array(vec!["#deal-acme".into(), "C0GLOBEX02".into()]);
    let (c, secrets) = connection(
        server,
        "slack",
        &["bot_token"],
        streams,
        &[("channels", channels)],
    );
    (c, secrets["bot_token"].clone())
}

#[tokio::test]
async fn channels_page_by_next_cursor() {
    let server = MockServer::start().await;
    mount_channels(&server).await;
    let (c, token) = slack(&server, &["channels"]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (2, 2));
    let got = query(
        &lake,
        "SELECT id, name, created FROM raw.slack_channels ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "C0ACME0001,deal-acme,2024-12-24T00:26:40Z",
            "C0GLOBEX02,deal-globex,2024-12-24T00:26:40Z"
        ]
    );
    let sent = server.received_requests().await.unwrap();
    let bearer = format!("Bearer {token}");
    assert!(sent.iter().all(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v == bearer.as_str())
    }));
}

#[tokio::test]
async fn messages_of_chosen_channels_land_and_resume_from_oldest() {
    let server = MockServer::start().await;
    mount_channels(&server).await;
    mount_history(&server).await;
    // The second sync: from the newest message seen, inclusive.
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("channel", "C0ACME0001"))
        .and(query_param("oldest", "1736035200.000300"))
        .and(query_param("inclusive", "true"))
        .respond_with(ok(
            json!({"messages": [message("1736121600.000000", "U3", "Signed!"),
                                message("1736035200.000300", "U1", "Sent the proposal (edited)")],
                   "has_more": false}),
            "",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("channel", "C0GLOBEX02"))
        .and(query_param("oldest", "1736035200.000300"))
        .respond_with(ok(json!({"messages": [], "has_more": false}), ""))
        .mount(&server)
        .await;
    let (c, _) = slack(&server, &["messages"]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 3));
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T00:00:00.000300+00:00")
    );
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 2);
    let got = query(
        &lake,
        "SELECT channel, ts, \"user\", text, sent_at FROM raw.slack_messages ORDER BY sent_at",
    )
    .await;
    assert_eq!(
        got,
        [
            "C0ACME0001,1735948800.000100,U2,Kickoff,2025-01-04T00:00:00.000100Z",
            "C0ACME0001,1736035200.000300,U1,Sent the proposal (edited),2025-01-05T00:00:00.000300Z",
            "C0ACME0001,1736121600.000000,U3,Signed!,2025-01-06T00:00:00Z",
            "C0GLOBEX02,1735990000.000000,U1,Pricing call,2025-01-04T11:26:40Z",
        ]
    );
}

#[tokio::test]
async fn users_land_emails_after_a_tiered_429_a_ratelimited_body_and_a_503() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "internal_error"})),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .respond_with(ok(
            json!({"members": [{"id": "U1", "name": "ann", "is_bot": false, "deleted": false,
                                "profile": {"email": "ann@us.com", "real_name": "Ann Rep"}}]}),
            "",
        ))
        .with_priority(4)
        .mount(&server)
        .await;
    let (c, _) = slack(&server, &["users"]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 3);
    assert_eq!(
        query(&lake, "SELECT id, email FROM raw.slack_users").await,
        ["U1,ann@us.com"]
    );
}

#[tokio::test]
async fn an_ok_false_invalid_auth_names_the_token_variable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})),
        )
        .mount(&server)
        .await;
    let (c, token) = slack(&server, &["channels"]);
    let lake = memory_lake().await;
    assert_refused(&sync_acme(&lake, &c).await, &c, "bot_token", &token);
}

#[tokio::test]
async fn other_ok_false_codes_and_malformed_pages_fail_without_committing() {
    let server = MockServer::start().await;
    mount_channels(&server).await;
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("channel", "C0ACME0001"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ok(
            json!({"messages": [message("1736035200.000300", "U1", "hi")]}),
            "bad",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("cursor", "bad"))
        .respond_with(ok(
            json!({"messages": [{"type": "message", "text": "no ts"}]}),
            "",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.history"))
        .and(query_param("channel", "C0GLOBEX02"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": false, "error": "missing_scope", "needed": "groups:history"}),
        ))
        .mount(&server)
        .await;
    let (c, token) = slack(&server, &["messages"]);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert_malformed(&o, &token);
    assert!(
        o.error.as_deref().unwrap().contains("no `ts`"),
        "{:?}",
        o.error
    );
    assert!(acme_cursor(&lake, &c).await.is_none());

    // The scope error, on a channel of its own.
    let mut globex = c.clone();
    globex.options.insert(
        "channels".into(),
        toml::Value::Array(vec!["C0GLOBEX02".into()]),
    );
    let o = sync_acme(&lake, &globex).await;
    let error = o.error.expect("missing scope fails");
    assert!(
        error.contains("Slack missing_scope") && error.contains("groups:history"),
        "{error}"
    );
    assert!(
        lake.info(&"raw.slack_messages".parse().unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn messages_without_channels_and_unknown_channel_names_are_refused() {
    let server = MockServer::start().await;
    mount_channels(&server).await;
    let (mut c, _) = slack(&server, &["messages"]);
    c.options.remove("channels");
    let e = revlake::sources::registry::open(&c)
        .err()
        .expect("no channels")
        .to_string();
    assert!(e.contains("options.channels"), "{e}");
    c.options.insert(
        "channels".into(),
        toml::Value::Array(vec!["#deal-initech".into()]),
    );
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(
        o.error.as_deref().unwrap().contains("#deal-initech"),
        "{:?}",
        o.error
    );
}
