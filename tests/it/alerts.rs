//! Alert channels against receivers on 127.0.0.1: a Slack incoming webhook (Block Kit), a
//! signed generic webhook, PagerDuty's Events API v2 and an SMTP server; retries after 429 and
//! 5xx, failures recorded in `ops.alert_deliveries` and never raised.

use std::sync::{Arc, Mutex};

use revlake::alerts::{
    Alert, AlertsConfig, ChannelConfig, SmtpTls, deliver, deliver_and_record, sign,
};
use revlake::quality::Severity;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{memory_lake, query};

fn alert(severity: Severity) -> Alert {
    Alert {
        id: "5f0c7c1e-0000-5000-8000-000000000001".into(),
        source: "quality".into(),
        severity,
        title: "staging.deals: 2 checks failed".into(),
        body: "- unique(id) [critical] fail: 2 rows share a (id) with another row (e.g. b9)\n- range(amount_usd) [high] fail: 1 rows with `amount_usd` out of range".into(),
        workspace_id: "acme".into(),
        dataset: Some("staging.deals".into()),
        details: serde_json::json!({"run_id": "r1", "checks": [{"check": "unique(id)", "failing_rows": 2}]}),
        raised_at: chrono::Utc::now(),
    }
}

/// A fresh environment variable holding `value`.
fn env(value: &str) -> String {
    let var = format!("REVLAKE_TEST_{}", uuid::Uuid::new_v4().simple());
    // SAFETY: each test sets its own uniquely named variable; no test reads another's.
    unsafe { std::env::set_var(&var, value) };
    var
}

fn config(channels: Vec<(&str, ChannelConfig)>) -> AlertsConfig {
    AlertsConfig {
        channels: channels
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect(),
        routes: Vec::new(),
        max_attempts: Some(3),
        min_backoff_ms: Some(10),
        timeout_secs: Some(5),
        repeat_after: None,
    }
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn slack_gets_a_block_kit_message_and_waits_out_a_429() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/XXXX"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_string("rate_limited"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/XXXX"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let url = env(&format!("{}/services/T000/B000/XXXX", server.uri()));
    let c = config(vec![(
        "dq",
        ChannelConfig::Slack {
            webhook_url_env: url,
        },
    )]);
    let started = std::time::Instant::now();
    let d = deliver(&c, &[alert(Severity::High)]).await;
    assert_eq!(
        (d.len(), d[0].status, d[0].attempts),
        (1, "sent", 2),
        "{d:?}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    let b = &bodies(&server).await[1];
    assert_eq!(b["text"], "[HIGH] staging.deals: 2 checks failed");
    let blocks = b["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "staging.deals: 2 checks failed");
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("unique(id)")
    );
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"*Workspace*\nacme"), "{fields:?}");
    assert!(fields.contains(&"*Dataset*\n`staging.deals`"), "{fields:?}");
    assert_eq!(blocks[3]["type"], "context");
}

#[tokio::test]
async fn webhooks_are_signed_over_timestamp_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/revlake"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let secret = "whsec_test_5ecret";
    let c = config(vec![(
        "ops",
        ChannelConfig::Webhook {
            url: format!("{}/hooks/revlake", server.uri()),
            secret_env: Some(env(secret)),
        },
    )]);
    let d = deliver(&c, &[alert(Severity::Medium)]).await;
    assert_eq!(d[0].status, "sent", "{d:?}");
    let requests = server.received_requests().await.unwrap();
    let r = &requests[0];
    let ts = r
        .headers
        .get("x-revlake-timestamp")
        .unwrap()
        .to_str()
        .unwrap();
    let signature = r
        .headers
        .get("x-revlake-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(signature, format!("v1={}", sign(secret, ts, &r.body)));
    assert_ne!(signature, format!("v1={}", sign("wrong", ts, &r.body)));
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["severity"], "medium");
    assert_eq!(body["workspace_id"], "acme");
    assert_eq!(body["details"]["checks"][0]["failing_rows"], 2);
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
}

#[tokio::test]
async fn pagerduty_gets_an_events_v2_trigger_and_a_400_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/enqueue"))
        .respond_with(ResponseTemplate::new(202).set_body_json(serde_json::json!({
            "status": "success", "message": "Event processed", "dedup_key": "5f0c7c1e-0000-5000-8000-000000000001"
        })))
        .mount(&server)
        .await;
    let key = "R015ZW5VRXJB9CAV3B6BQ7H6HQ6GXR5Y";
    let c = config(vec![(
        "oncall",
        ChannelConfig::Pagerduty {
            routing_key_env: env(key),
            url: Some(format!("{}/v2/enqueue", server.uri())),
        },
    )]);
    // Only critical alerts are routed to PagerDuty by default.
    assert!(deliver(&c, &[alert(Severity::High)]).await.is_empty());
    let d = deliver(&c, &[alert(Severity::Critical)]).await;
    assert_eq!(d[0].status, "sent", "{d:?}");
    let b = &bodies(&server).await[0];
    assert_eq!(b["routing_key"], key);
    assert_eq!(b["event_action"], "trigger");
    assert_eq!(b["dedup_key"], "5f0c7c1e-0000-5000-8000-000000000001");
    assert_eq!(b["payload"]["severity"], "critical");
    assert_eq!(b["payload"]["source"], "revlake");
    assert_eq!(b["payload"]["component"], "staging.deals");
    assert_eq!(b["payload"]["group"], "acme");
    assert_eq!(
        b["payload"]["summary"],
        "[acme] staging.deals: 2 checks failed"
    );
    chrono::DateTime::parse_from_rfc3339(b["payload"]["timestamp"].as_str().unwrap()).unwrap();

    let refusing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "status": "invalid event", "message": "Event object is invalid", "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]
        })))
        .mount(&refusing)
        .await;
    let c = config(vec![(
        "oncall",
        ChannelConfig::Pagerduty {
            routing_key_env: env("short"),
            url: Some(format!("{}/v2/enqueue", refusing.uri())),
        },
    )]);
    let d = deliver(&c, &[alert(Severity::Critical)]).await;
    assert_eq!((d[0].status, d[0].attempts), ("failed", 1), "{d:?}");
    assert!(d[0].error.as_deref().unwrap().contains("400"), "{d:?}");
    assert!(
        d[0].error.as_deref().unwrap().contains("routing_key"),
        "{d:?}"
    );
}

/// A minimal SMTP server: accepts one session and keeps the envelope and message.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let keep = log.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write
                    .write_all(b"220 mock.local ESMTP ready\r\n")
                    .await
                    .unwrap();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    keep.lock().unwrap().push(line.clone());
                    let reply: &[u8] = if in_data {
                        if line == "." {
                            in_data = false;
                            b"250 2.0.0 queued\r\n"
                        } else {
                            continue;
                        }
                    } else {
                        let upper = line.to_ascii_uppercase();
                        if upper.starts_with("EHLO") {
                            b"250-mock.local\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("DATA") {
                            in_data = true;
                            b"354 go ahead\r\n"
                        } else if upper.starts_with("QUIT") {
                            write.write_all(b"221 bye\r\n").await.ok();
                            break;
                        } else {
                            b"250 2.1.0 ok\r\n"
                        }
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, log)
}

#[tokio::test]
async fn email_goes_through_smtp_with_envelope_subject_and_body() {
    let (port, log) = smtp_server().await;
    let c = config(vec![(
        "revops",
        ChannelConfig::Email {
            smtp_host: "127.0.0.1".into(),
            smtp_port: Some(port),
            tls: SmtpTls::None,
            username_env: None,
            password_env: None,
            from: "revlake <revlake@example.com>".into(),
            to: vec!["revops@example.com".into(), "data@example.com".into()],
        },
    )]);
    let d = deliver(&c, &[alert(Severity::Medium)]).await;
    assert_eq!(d[0].status, "sent", "{d:?}");
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("MAIL FROM:<revlake@example.com>"), "{log}");
    assert!(log.contains("RCPT TO:<revops@example.com>"), "{log}");
    assert!(log.contains("RCPT TO:<data@example.com>"), "{log}");
    assert!(
        log.contains("Subject: [revlake][MEDIUM] staging.deals: 2 checks failed"),
        "{log}"
    );
    assert!(log.contains("unique(id) [critical] fail"), "{log}");
}

#[tokio::test]
async fn undeliverable_alerts_are_retried_then_recorded_never_raised() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let c = config(vec![
        (
            "hook",
            ChannelConfig::Webhook {
                url: format!("{}/x", server.uri()),
                secret_env: None,
            },
        ),
        // A missing secret fails at once, naming the variable.
        (
            "dq",
            ChannelConfig::Slack {
                webhook_url_env: "REVLAKE_TEST_UNSET_SLACK_URL".into(),
            },
        ),
    ]);
    let d = deliver_and_record(&lake, &c, &[alert(Severity::High)]).await;
    let by: std::collections::BTreeMap<&str, _> =
        d.iter().map(|x| (x.channel.as_str(), x)).collect();
    assert_eq!((by["hook"].status, by["hook"].attempts), ("failed", 3));
    assert!(by["hook"].error.as_deref().unwrap().contains("503"));
    assert_eq!((by["dq"].status, by["dq"].attempts), ("failed", 1));
    assert!(
        by["dq"]
            .error
            .as_deref()
            .unwrap()
            .contains("REVLAKE_TEST_UNSET_SLACK_URL")
    );
    assert_eq!(
        query(
            &lake,
            "SELECT channel, kind, status, attempts FROM ops.alert_deliveries"
        )
        .await,
        ["dq,slack,failed,1", "hook,webhook,failed,3"]
    );
}

#[tokio::test]
async fn pipelines_declare_channels_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    std::fs::write(
        dir.path().join("pipelines/default.toml"),
        r#"
[alerts.channels.oncall]
kind = "pagerduty"
routing_key_env = "PD_KEY"

[[alerts.routes]]
severity = ["critical"]
channels = ["oncall"]
"#,
    )
    .unwrap();
    let project = revlake::project::Project::load(dir.path()).unwrap();
    let alerts = &project.default_pipeline().unwrap().file.alerts;
    assert_eq!(alerts.channels_for(&alert(Severity::Critical)), ["oncall"]);
    std::fs::write(
        dir.path().join("pipelines/default.toml"),
        "[[alerts.routes]]\nseverity = [\"high\"]\nchannels = [\"slack\"]\n",
    )
    .unwrap();
    let e = revlake::project::Project::load(dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("default.toml") && e.contains("\"slack\""), "{e}");
}

#[tokio::test]
async fn a_check_run_raises_one_alert_per_failing_dataset_and_workspace() {
    let (_dir, project, lake) = crate::quality::project_and_lake().await;
    let run = revlake::quality::run_checks(&lake, &project, &Default::default())
        .await
        .unwrap();
    let alerts = revlake::alerts::quality_alerts(&run);
    assert_eq!(alerts.len(), 1, "only the bad workspace fails: {alerts:?}");
    let a = &alerts[0];
    assert_eq!(
        (a.workspace_id.as_str(), a.severity),
        ("bad", Severity::Critical)
    );
    assert_eq!(
        a.title,
        "staging.deals: 12 checks failed (critical: what reads it was not built)"
    );
    assert!(
        a.body.contains(
            "- unique(id) [critical] fail: 2 rows share a (id) with another row (e.g. b9)"
        ),
        "{}",
        a.body
    );
    assert_eq!(a.details["checks"].as_array().unwrap().len(), 12);
    // The same failures give the same id: PagerDuty keeps one incident across runs.
    let again = revlake::quality::run_checks(&lake, &project, &Default::default())
        .await
        .unwrap();
    assert_eq!(revlake::alerts::quality_alerts(&again)[0].id, a.id);
}

#[tokio::test]
async fn an_unchanged_alert_is_not_resent_until_it_changes_or_the_window_passes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let lake = memory_lake().await;
    let mut c = config(vec![(
        "hook",
        ChannelConfig::Webhook {
            url: format!("{}/x", server.uri()),
            secret_env: None,
        },
    )]);
    let status = |d: &[revlake::alerts::Delivery]| d.iter().map(|x| x.status).collect::<Vec<_>>();
    // First run: sent. Second run, same alert: suppressed, nothing posted.
    assert_eq!(
        status(&deliver_and_record(&lake, &c, &[alert(Severity::High)]).await),
        ["sent"]
    );
    assert_eq!(
        status(&deliver_and_record(&lake, &c, &[alert(Severity::High)]).await),
        ["suppressed"]
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // It changed (a third check fails, so the title differs): sent again.
    let mut changed = alert(Severity::High);
    changed.title = "staging.deals: 3 checks failed".into();
    assert_eq!(
        status(&deliver_and_record(&lake, &c, &[changed]).await),
        ["sent"]
    );
    // The same alert at another severity is a change too.
    assert_eq!(
        status(&deliver_and_record(&lake, &c, &[alert(Severity::Critical)]).await),
        ["sent"]
    );
    // With no quiet window every run sends.
    c.repeat_after = Some("0s".into());
    assert_eq!(
        status(&deliver_and_record(&lake, &c, &[alert(Severity::High)]).await),
        ["sent"]
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
    assert_eq!(
        query(
            &lake,
            "SELECT status, count(*) FROM ops.alert_deliveries GROUP BY status"
        )
        .await,
        ["sent,4", "suppressed,1"]
    );
    // A window that is not a duration is refused when the pipeline loads.
    c.repeat_after = Some("weekly".into());
    assert!(c.validate().unwrap_err().contains("alerts.repeat_after"));
}
