//! Webhook receivers of `revlake serve` on loopback: a small generated org (workspace `demo`),
//! a project whose pipeline enables the receivers, signed requests built here (HubSpot v3,
//! Stripe, revlake's scheme), and the durable queue: processed events change the deal's raw row,
//! staging row and score; refused ones (bad or stale signature, replay, malformed, oversized,
//! unknown workspace, unset secret) change nothing; a `kill -9` after the acks loses nothing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use revlake::lake::{Lake, WorkspaceId};
use revlake::project::Project;
use revlake::serve::queue::{Status, current_states, read_journal};
use revlake::serve::webhooks::Webhooks;
use revlake::serve::{AppState, ServeConfig, serve};
use serde_json::{Value, json};

const HUBSPOT_ENV: &str = "REVLAKE_IT_WEBHOOK_HUBSPOT";
const STRIPE_ENV: &str = "REVLAKE_IT_WEBHOOK_STRIPE";
const GENERIC_ENV: &str = "REVLAKE_IT_WEBHOOK_GENERIC";
/// Named by the pipeline, never set.
const UNSET_ENV: &str = "REVLAKE_IT_WEBHOOK_NEVER_SET";
const HUBSPOT_SECRET: &str = "hs-client-secret";
const STRIPE_SECRET: &str = "whsec_it";
const GENERIC_SECRET: &str = "generic-it-secret";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hmac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// A project folder: the repository's schemas, transforms, seeds and jobs, and one pipeline
/// for workspace `demo` with `[webhooks]`.
fn project_dir(dir: &Path) -> PathBuf {
    let root = dir.join("project");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    for sub in ["schemas", "transforms", "datasets", "jobs"] {
        let target = root.join(sub);
        if !target.exists() {
            std::os::unix::fs::symlink(repo().join(sub), target).unwrap();
        }
    }
    std::fs::write(
        root.join("pipelines/default.toml"),
        format!(
            "workspace = \"demo\"\n\n[webhooks]\nhubspot_secret_env = \"{HUBSPOT_ENV}\"\n\
             stripe_secret_env = \"{STRIPE_ENV}\"\ngeneric_secret_env = \"{GENERIC_ENV}\"\n\
             salesforce_secret_env = \"{UNSET_ENV}\"\n"
        ),
    )
    .unwrap();
    root
}

struct Org {
    dir: PathBuf,
    lake: PathBuf,
    project: PathBuf,
}

fn org() -> &'static Org {
    static ORG: OnceLock<Org> = OnceLock::new();
    ORG.get_or_init(|| {
        // SAFETY: set once, before any server of this module reads them; the variables are
        // this module's own.
        unsafe {
            std::env::set_var(HUBSPOT_ENV, HUBSPOT_SECRET);
            std::env::set_var(STRIPE_ENV, STRIPE_SECRET);
            std::env::set_var(GENERIC_ENV, GENERIC_SECRET);
        }
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(build_org())
        })
        .join()
        .unwrap()
    })
}

async fn build_org() -> Org {
    let dir = tempfile::Builder::new()
        .prefix("webhooks-org-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let lake_dir = dir.join("lake");
    let project = Project::load(&repo()).unwrap();
    let lake = Lake::open(&lake_dir.display().to_string()).await.unwrap();
    let ws = WorkspaceId::new("demo").unwrap();
    let exports = dir.join("exports");
    let config = revlake::generate::GenerateConfig {
        deals: 300,
        seed: 5,
        ..revlake::generate::GenerateConfig::default()
    };
    revlake::generate::generate(&config, &exports, &mut |_| {}).unwrap();
    revlake::pipeline::land_exports(&lake, &exports, &ws, "sync-1", &mut |_| {})
        .await
        .unwrap();
    revlake::pipeline::transform(&lake, &project, Some(&ws), &mut |_| {})
        .await
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(repo())
        .arg("--lake")
        .arg(&lake_dir)
        .args(["score", "--workspace", "demo", "--train"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = project_dir(&dir);
    Org {
        dir,
        lake: lake_dir,
        project,
    }
}

/// The in-process server of this module, shared by its tests.
struct Server {
    base: String,
    lake: Lake,
}

async fn server() -> &'static Server {
    static SERVER: tokio::sync::OnceCell<Server> = tokio::sync::OnceCell::const_new();
    SERVER
        .get_or_init(|| async {
            let org = org();
            // The server outlives each test's runtime: it runs on a runtime of its own.
            let (tx, rx) = std::sync::mpsc::channel();
            let lake_dir = org.lake.clone();
            let project_root = org.project.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let lake = Lake::open(&lake_dir.display().to_string()).await.unwrap();
                    let project = Arc::new(Project::load(&project_root).unwrap());
                    let config = ServeConfig {
                        max_body_bytes: 16 * 1024,
                        anonymous_per_minute: 100_000,
                        anonymous_burst: 10_000,
                        ..ServeConfig::default()
                    };
                    let state = AppState::new(lake.clone(), config).unwrap();
                    let hooks = Webhooks::start(&lake, project).await.unwrap();
                    let _ = state.webhooks.set(hooks);
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    tx.send(listener.local_addr().unwrap()).unwrap();
                    serve(listener, state, std::future::pending())
                        .await
                        .unwrap();
                });
            });
            let addr = rx.recv().unwrap();
            Server {
                base: format!("http://{addr}"),
                lake: Lake::open(&org.lake.display().to_string()).await.unwrap(),
            }
        })
        .await
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn send(
    base: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let response = r.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Headers of revlake's scheme, signed at `ts`.
fn revlake_headers(secret: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = ts.to_string();
    vec![
        ("X-Revlake-Timestamp", ts.clone()),
        (
            "X-Revlake-Signature",
            format!(
                "sha256={}",
                hex::encode(hmac(secret, &[ts.as_bytes(), b".", body]))
            ),
        ),
    ]
}

fn hubspot_headers(base: &str, path: &str, body: &[u8], ts_ms: i64) -> Vec<(&'static str, String)> {
    let ts = ts_ms.to_string();
    // The server is addressed as http://127.0.0.1:port, which is also the Host it sees.
    let uri = format!("{base}{path}");
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac(
        HUBSPOT_SECRET,
        &[b"POST", uri.as_bytes(), body, ts.as_bytes()],
    ));
    vec![
        ("X-HubSpot-Request-Timestamp", ts),
        ("X-HubSpot-Signature-v3", sig),
    ]
}

async fn query(lake: &Lake, sql: &str) -> Vec<Value> {
    let session = revlake::sql::SqlSession::open(lake, &revlake::sql::SessionOptions::default())
        .await
        .unwrap();
    let batches = session.query(sql).await.unwrap().collect().await.unwrap();
    revlake::serve::rows::to_json_rows(&batches)
        .unwrap()
        .into_iter()
        .map(Value::Object)
        .collect()
}

/// Open HubSpot deals of the org: (HubSpot id, staging id), distinct per caller index.
async fn open_hubspot_deal(lake: &Lake, index: usize) -> (String, String) {
    let rows = query(
        lake,
        "SELECT source_id, id FROM staging.deals WHERE workspace_id = 'demo' \
         AND source = 'hubspot' AND NOT is_closed ORDER BY source_id",
    )
    .await;
    assert!(
        rows.len() > index,
        "the org has {} open HubSpot deals",
        rows.len()
    );
    let r = &rows[index];
    (
        r["source_id"].as_str().unwrap().to_string(),
        r["id"].as_str().unwrap().to_string(),
    )
}

/// Waits until every id in `ids` has a final state; returns the states.
async fn wait_final(lake: &Lake, ids: &[String]) -> Vec<revlake::serve::queue::EventRecord> {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let states = current_states(read_journal(lake).await.unwrap());
        let mine: Vec<_> = states
            .into_iter()
            .filter(|s| ids.contains(&s.event_id))
            .collect();
        if mine.len() == ids.len() && mine.iter().all(|s| s.status.is_final()) {
            return mine;
        }
        assert!(Instant::now() < deadline, "not processed in time: {mine:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_hubspot_stage_change_lands_and_rescores_the_deal() {
    let s = server().await;
    let (hs_id, deal_id) = open_hubspot_deal(&s.lake, 0).await;
    let event_id: u64 = rand_id();
    let path = "/api/webhooks/demo/hubspot";
    let body = json!([{
        "eventId": event_id, "subscriptionId": 1, "portalId": 62515, "appId": 1,
        "occurredAt": chrono::Utc::now().timestamp_millis(),
        "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
        "objectId": hs_id.parse::<u64>().unwrap(), "propertyName": "dealstage",
        "propertyValue": "appointmentscheduled", "changeSource": "CRM"
    }])
    .to_string();
    let headers = hubspot_headers(
        &s.base,
        path,
        body.as_bytes(),
        chrono::Utc::now().timestamp_millis(),
    );
    let (status, answer) = send(&s.base, path, body.as_bytes(), &headers).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = format!("hubspot:{event_id}");
    assert_eq!(answer["accepted"], json!([id]));
    let states = wait_final(&s.lake, std::slice::from_ref(&id)).await;
    assert_eq!(states[0].status, Status::Processed, "{states:?}");
    assert!(states[0].latency_ms.is_some_and(|ms| ms >= 0));
    let raw = query(
        &s.lake,
        &format!("SELECT dealstage FROM raw.hubspot_deals WHERE hs_object_id = {hs_id}"),
    )
    .await;
    assert_eq!(raw, vec![json!({"dealstage": "appointmentscheduled"})]);
    let staged = query(
        &s.lake,
        &format!("SELECT stage FROM staging.deals WHERE id = '{deal_id}'"),
    )
    .await;
    assert_eq!(staged, vec![json!({"stage": "lead"})]);
    let scored = query(
        &s.lake,
        &format!("SELECT stage FROM marts.deal_scores WHERE deal_id = '{deal_id}'"),
    )
    .await;
    assert_eq!(
        scored,
        vec![json!({"stage": "lead"})],
        "rescored at its new stage"
    );

    // The same request again is a replay: answered, not queued, not applied twice.
    let (status, answer) = send(&s.base, path, body.as_bytes(), &headers).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], json!([]));
    assert_eq!(answer["duplicates"], json!([id]));
    let rows = read_journal(&s.lake).await.unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r.event_id == id && r.status == Status::Processed)
            .count(),
        1
    );
}

fn rand_id() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()) >> 12
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_queue_nothing() {
    let s = server().await;
    let journal_before = read_journal(&s.lake).await.unwrap().len();
    let id = unique("refused");
    let body =
        json!({"id": id, "source": "hubspot", "object_id": "1", "properties": {"amount": "5"}})
            .to_string();
    let b = body.as_bytes();
    let path = "/api/webhooks/demo/generic";

    // Wrong secret.
    let (status, answer) = send(&s.base, path, b, &revlake_headers("wrong", now_s(), b)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    // Body altered after signing.
    let mut headers = revlake_headers(GENERIC_SECRET, now_s(), b);
    let (status, _) = send(&s.base, path, b"{\"id\":\"x\"}", &headers).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // No signature at all.
    headers.pop();
    let (status, answer) = send(&s.base, path, b, &headers).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Revlake-Signature")
    );
    // Stale: signed ten minutes ago (a replay of a captured request).
    let (status, answer) = send(
        &s.base,
        path,
        b,
        &revlake_headers(GENERIC_SECRET, now_s() - 600, b),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("s from now"),
        "{answer}"
    );
    // HubSpot: stale timestamp and a signature over another URL.
    let hs_path = "/api/webhooks/demo/hubspot";
    let hs_body = br#"[{"eventId":1,"subscriptionType":"deal.propertyChange","objectId":1}]"#;
    let old = chrono::Utc::now().timestamp_millis() - 6 * 60 * 1000;
    let (status, _) = send(
        &s.base,
        hs_path,
        hs_body,
        &hubspot_headers(&s.base, hs_path, hs_body, old),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let elsewhere = hubspot_headers(
        "https://elsewhere.example",
        hs_path,
        hs_body,
        chrono::Utc::now().timestamp_millis(),
    );
    let (status, _) = send(&s.base, hs_path, hs_body, &elsewhere).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Stripe: stale.
    let st_body = br#"{"id":"evt_stale","type":"invoice.paid"}"#;
    let t = now_s() - 400;
    let sig = hex::encode(hmac(
        STRIPE_SECRET,
        &[t.to_string().as_bytes(), b".", st_body],
    ));
    let (status, _) = send(
        &s.base,
        "/api/webhooks/demo/stripe",
        st_body,
        &[("Stripe-Signature", format!("t={t},v1={sig}"))],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Signed, but not JSON / not the shape.
    for bad in [&b"{not json"[..], br#"{"id":"1","source":"hubspot"}"#] {
        let (status, answer) = send(
            &s.base,
            path,
            bad,
            &revlake_headers(GENERIC_SECRET, now_s(), bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], "bad_json");
    }
    // Oversized (the server takes 16 KiB).
    let big = json!({"id": "big", "source": "hubspot", "object_id": "1",
                     "properties": {"description": "x".repeat(20_000)}})
    .to_string();
    let (status, answer) = send(
        &s.base,
        path,
        big.as_bytes(),
        &revlake_headers(GENERIC_SECRET, now_s(), big.as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // A workspace no pipeline serves.
    let (status, answer) = send(
        &s.base,
        "/api/webhooks/nobody/generic",
        b,
        &revlake_headers(GENERIC_SECRET, now_s(), b),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "unknown_workspace");
    // The Salesforce receiver's secret variable is named but not set: a clear 500.
    let (status, answer) = send(
        &s.base,
        "/api/webhooks/demo/salesforce",
        b,
        &revlake_headers(GENERIC_SECRET, now_s(), b),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer["error"]["code"], "webhook_secret_missing");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains(UNSET_ENV),
        "{answer}"
    );

    let journal = read_journal(&s.lake).await.unwrap();
    assert!(
        !journal
            .iter()
            .any(|r| r.event_id == format!("generic:{id}") || r.event_id == "generic:big"),
        "nothing refused was queued"
    );
    assert!(journal.len() >= journal_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_deal_apply_in_order_and_stripe_lands_raw() {
    let s = server().await;
    let (hs_id, _) = open_hubspot_deal(&s.lake, 1).await;
    let path = "/api/webhooks/demo/generic";
    let mut ids = Vec::new();
    // Three changes of one deal's amount, each its own request: the last one wins.
    for amount in ["1111", "2222", "3333"] {
        let id = unique("order");
        let body = json!({"id": id, "source": "hubspot", "object_id": hs_id,
                          "properties": {"amount": amount}})
        .to_string();
        let (status, answer) = send(
            &s.base,
            path,
            body.as_bytes(),
            &revlake_headers(GENERIC_SECRET, now_s(), body.as_bytes()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        ids.push(format!("generic:{id}"));
    }
    // A Stripe event signed by the old and the new secret (a rotation).
    let evt = unique("evt");
    let st_body = json!({"id": evt, "type": "invoice.paid", "created": now_s(),
                         "data": {"object": {"id": "in_1", "object": "invoice"}}})
    .to_string();
    let t = now_s();
    let good = hex::encode(hmac(
        STRIPE_SECRET,
        &[t.to_string().as_bytes(), b".", st_body.as_bytes()],
    ));
    let old = hex::encode(hmac(
        "whsec_old",
        &[t.to_string().as_bytes(), b".", st_body.as_bytes()],
    ));
    let (status, answer) = send(
        &s.base,
        "/api/webhooks/demo/stripe",
        st_body.as_bytes(),
        &[("Stripe-Signature", format!("t={t},v1={old},v1={good}"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    ids.push(format!("stripe:{evt}"));

    let states = wait_final(&s.lake, &ids).await;
    assert!(
        states.iter().all(|s| s.status == Status::Processed),
        "{states:?}"
    );
    let seqs: Vec<i64> = ids
        .iter()
        .map(|i| states.iter().find(|s| &s.event_id == i).unwrap().seq)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "received in order: {seqs:?}"
    );
    let raw = query(
        &s.lake,
        &format!("SELECT CAST(amount AS DOUBLE) AS amount FROM raw.hubspot_deals WHERE hs_object_id = {hs_id}"),
    )
    .await;
    assert_eq!(raw, vec![json!({"amount": 3333.0})]);
    let landed = query(
        &s.lake,
        &format!("SELECT type, object_id FROM raw.stripe_webhook_events WHERE id = '{evt}'"),
    )
    .await;
    assert_eq!(
        landed,
        vec![json!({"type": "invoice.paid", "object_id": "in_1"})]
    );
}

/// Starts the binary on a free port; returns it and its base URL.
fn spawn_binary(project: &Path, lake: &Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(project)
        .arg("--lake")
        .arg(lake)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--anonymous-rate-limit",
            "100000",
            "--anonymous-burst",
            "10000",
        ])
        .env(GENERIC_ENV, GENERIC_SECRET)
        .env_remove("REVLAKE_LAKE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|a| format!("http://{a}"))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_every_acknowledged_event_once() {
    let org = org();
    // A copy of the org: this server is the lake's only writer.
    let dir = org.dir.join(format!("crash-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(&org.lake)
        .arg(dir.join("lake"))
        .status()
        .unwrap();
    assert!(status.success());
    let lake_dir = dir.join("lake");
    let lake = Lake::open(&lake_dir.display().to_string()).await.unwrap();
    let (hs_id, _) = open_hubspot_deal(&lake, 2).await;

    let (mut child, base) = spawn_binary(&org.project, &lake_dir);
    let mut acked = Vec::new();
    for i in 0..12 {
        let id = unique("crash");
        let body = json!({"id": id, "source": "hubspot", "object_id": hs_id,
                          "properties": {"amount": format!("{}", 5000 + i)}})
        .to_string();
        let (status, answer) = send(
            &base,
            "/api/webhooks/demo/generic",
            body.as_bytes(),
            &revlake_headers(GENERIC_SECRET, now_s(), body.as_bytes()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        acked.push(format!("generic:{id}"));
    }
    // kill -9 right after the acks: processing has at most begun.
    child.kill().unwrap();
    child.wait().unwrap();
    let before = current_states(read_journal(&lake).await.unwrap());
    assert_eq!(
        before
            .iter()
            .filter(|s| acked.contains(&s.event_id))
            .count(),
        acked.len(),
        "every acknowledged event was committed before its 2xx"
    );

    let (mut child, _) = spawn_binary(&org.project, &lake_dir);
    let states = wait_final(&lake, &acked).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        states.iter().all(|s| s.status == Status::Processed),
        "{states:?}"
    );
    let rows = read_journal(&lake).await.unwrap();
    for id in &acked {
        let processed = rows
            .iter()
            .filter(|r| &r.event_id == id && r.status == Status::Processed)
            .count();
        assert_eq!(processed, 1, "{id} processed exactly once");
    }
    let raw = query(
        &lake,
        &format!("SELECT CAST(amount AS DOUBLE) AS amount FROM raw.hubspot_deals WHERE hs_object_id = {hs_id}"),
    )
    .await;
    assert_eq!(
        raw,
        vec![json!({"amount": 5011.0})],
        "applied in order: the last wins"
    );
}
