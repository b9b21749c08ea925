//! Webhook receivers of `revlake serve` on loopback: a small generated org (workspace `demo`,
//! mined, simulated and scored as the batch does), a project whose pipeline enables the
//! receivers and whose one job sets the simulation's runs and seed, signed requests built here
//! (HubSpot v3, Stripe, revlake's scheme), and the durable queue: processed events change the
//! deal's raw row, stage history, staging row, forecast and score, and Stripe's subscriptions
//! and invoices (never with an older event); refused ones (bad or stale signature, replay,
//! malformed, oversized, unknown workspace, unset secret) change nothing; a `kill -9` after the
//! acks loses nothing.
//!
//! Set `REVLAKE_IT_WEBHOOK_LOG=1` to see the server's `webhook batch applied` lines (the
//! milliseconds of each step) on stderr.

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
const SALESFORCE_ENV: &str = "REVLAKE_IT_WEBHOOK_SALESFORCE";
/// Named by the pipeline, never set.
const UNSET_ENV: &str = "REVLAKE_IT_WEBHOOK_NEVER_SET";
const HUBSPOT_SECRET: &str = "hs-client-secret";
const STRIPE_SECRET: &str = "whsec_it";
const GENERIC_SECRET: &str = "generic-it-secret";
const SALESFORCE_SECRET: &str = "salesforce-relay-it-secret";
/// The simulation settings of the project's job: the fixture's batch forecast uses them, and so
/// must the webhooks' re-forecasts.
const SIM_RUNS: u32 = 2000;
const SIM_SEED: u64 = 11;

/// Tests whose events re-forecast deals run one at a time, so each can tell which forecast rows
/// its own events changed.
static FORECASTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// A project folder: the repository's schemas, transforms and seeds, one pipeline for workspace
/// `demo` with `[webhooks]`, one for workspace `other` whose Salesforce receiver names an unset
/// variable, and one job simulating `demo` with [`SIM_RUNS`] and [`SIM_SEED`].
fn project_dir(dir: &Path) -> PathBuf {
    let root = dir.join("project");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::create_dir_all(root.join("jobs")).unwrap();
    std::fs::write(
        root.join("jobs/scores.toml"),
        format!(
            "description = \"Mine, simulate and score.\"\npipeline = \"default\"\n\n\
             [stages.mining]\n[stages.simulation]\nruns = {SIM_RUNS}\nseed = {SIM_SEED}\n[stages.scoring]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("pipelines/other.toml"),
        format!("workspace = \"other\"\n\n[webhooks]\nsalesforce_secret_env = \"{UNSET_ENV}\"\n"),
    )
    .unwrap();
    for sub in ["schemas", "transforms", "datasets"] {
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
             salesforce_secret_env = \"{SALESFORCE_ENV}\"\n"
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
            std::env::set_var(SALESFORCE_ENV, SALESFORCE_SECRET);
        }
        if std::env::var_os("REVLAKE_IT_WEBHOOK_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("revlake::serve::webhooks=info")
                .with_writer(std::io::stderr)
                .try_init();
        }
        crate::common::on_own_runtime(build_org())
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
    // The batch after the models: mining, the deal forecasts (the job's runs and seed), scoring.
    let (runs, seed) = (SIM_RUNS.to_string(), SIM_SEED.to_string());
    for args in [
        vec!["mine", "--workspace", "demo"],
        vec![
            "simulate",
            "--workspace",
            "demo",
            "--runs",
            runs.as_str(),
            "--seed",
            seed.as_str(),
            "--limit",
            "1",
        ],
        vec!["score", "--workspace", "demo", "--train"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
            .arg("--project")
            .arg(repo())
            .arg("--lake")
            .arg(&lake_dir)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "revlake {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
    let _one_at_a_time = FORECASTS.lock().await;
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
    // Workspace `other`'s Salesforce receiver names a variable that is not set: a clear 500.
    let (status, answer) = send(
        &s.base,
        "/api/webhooks/other/salesforce",
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
    let _one_at_a_time = FORECASTS.lock().await;
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

/// Open deals of `source`: (source id, staging id, raw stage, stage), by source id.
async fn open_deal(lake: &Lake, source: &str, pick: Pick) -> (String, String, String, String) {
    let rows = query(
        lake,
        &format!(
            "SELECT source_id, id, stage_raw, stage FROM staging.deals WHERE workspace_id = 'demo' \
             AND source = '{source}' AND NOT is_closed AND stage IS NOT NULL ORDER BY source_id"
        ),
    )
    .await;
    let r = match pick {
        Pick::Nth(i) => rows.get(i),
        Pick::Last => rows.last(),
    }
    .unwrap_or_else(|| panic!("the org has {} open {source} deals", rows.len()));
    let text = |k: &str| r[k].as_str().unwrap().to_string();
    (
        text("source_id"),
        text("id"),
        text("stage_raw"),
        text("stage"),
    )
}

#[derive(Clone, Copy)]
enum Pick {
    Nth(usize),
    Last,
}

/// `marts.deal_forecasts` of `demo`, by deal id.
async fn forecasts(lake: &Lake) -> std::collections::BTreeMap<String, Value> {
    query(
        lake,
        "SELECT deal_id, stage, p_win, runs, seed, CAST(computed_at AS VARCHAR) AS computed_at \
         FROM marts.deal_forecasts WHERE workspace_id = 'demo'",
    )
    .await
    .into_iter()
    .map(|r| (r["deal_id"].as_str().unwrap().to_string(), r))
    .collect()
}

/// The deal's stage history rows entered at `at_ms`: (to_stage, to_stage_raw, from_stage).
async fn history_at(lake: &Lake, deal_id: &str, at_ms: i64) -> Vec<Value> {
    query(
        lake,
        &format!(
            "SELECT to_stage, to_stage_raw, from_stage FROM staging.deal_stage_history \
             WHERE deal_id = '{deal_id}' \
             AND CAST(round(date_part('epoch', transitioned_at) * 1000) AS BIGINT) = {at_ms}"
        ),
    )
    .await
}

/// Asserts that only `changed` rows differ between two snapshots of the forecasts (and that
/// none appeared or vanished but `gone`).
fn only_changed(
    before: &std::collections::BTreeMap<String, Value>,
    after: &std::collections::BTreeMap<String, Value>,
    changed: &str,
    gone: bool,
) {
    for (id, row) in before {
        if id != changed {
            assert_eq!(
                after.get(id),
                Some(row),
                "deal {id}'s forecast is untouched"
            );
        }
    }
    let expected = if gone { before.len() - 1 } else { before.len() };
    assert_eq!(after.len(), expected, "no forecast row appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_stage_change_adds_its_history_and_reforecasts_only_that_deal() {
    let s = server().await;
    let _one_at_a_time = FORECASTS.lock().await;
    // (The org has three open HubSpot deals: 0 and 1 are other tests', 2 the crash test's, on
    // a copy of the lake.)
    let (hs_id, deal_id, stage_raw, _) = open_deal(&s.lake, "hubspot", Pick::Nth(2)).await;
    let (to, label, stage) = [
        ("contractsent", "Contract Sent", "negotiation"),
        ("qualifiedtobuy", "Qualified To Buy", "qualification"),
    ]
    .into_iter()
    .find(|(id, _, _)| *id != stage_raw)
    .unwrap();
    let before = forecasts(&s.lake).await;
    let old = before[&deal_id].clone();
    assert_eq!(old["runs"], json!(SIM_RUNS), "the fixture's batch forecast");
    let occurred = chrono::Utc::now().timestamp_millis() - 4321;
    assert!(history_at(&s.lake, &deal_id, occurred).await.is_empty());

    let event_id = rand_id();
    let path = "/api/webhooks/demo/hubspot";
    let body = json!([{
        "eventId": event_id, "subscriptionId": 1, "portalId": 62515, "appId": 1,
        "occurredAt": occurred, "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
        "objectId": hs_id.parse::<u64>().unwrap(), "propertyName": "dealstage",
        "propertyValue": to, "changeSource": "CRM"
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
    let states = wait_final(&s.lake, std::slice::from_ref(&id)).await;
    assert_eq!(states[0].status, Status::Processed, "{states:?}");

    // HubSpot's stage date, set from occurredAt, is the history row.
    let raw = query(
        &s.lake,
        &format!(
            "SELECT CAST(round(date_part('epoch', hs_v2_date_entered_{to}) * 1000) AS BIGINT) AS at \
             FROM raw.hubspot_deals WHERE hs_object_id = {hs_id}"
        ),
    )
    .await;
    assert_eq!(raw, vec![json!({"at": occurred})]);
    let history = history_at(&s.lake, &deal_id, occurred).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["to_stage"], json!(stage));
    assert_eq!(history[0]["to_stage_raw"], json!(label));

    // Re-forecast at its new stage, with the job's runs and seed; no other deal's row moved.
    let after = forecasts(&s.lake).await;
    let new = &after[&deal_id];
    assert_ne!(new["computed_at"], old["computed_at"]);
    assert_ne!(new["p_win"], old["p_win"], "{old} -> {new}");
    assert_eq!(new["stage"], json!(stage));
    assert_eq!(new["runs"], json!(SIM_RUNS));
    assert_eq!(new["seed"], json!(SIM_SEED));
    only_changed(&before, &after, &deal_id, false);
    // Scoring read the new forecast.
    let scored = query(
        &s.lake,
        &format!("SELECT stage FROM marts.deal_scores WHERE deal_id = '{deal_id}'"),
    )
    .await;
    assert_eq!(scored, vec![json!({"stage": stage})]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_closed_by_a_webhook_loses_its_forecast_row() {
    let s = server().await;
    let _one_at_a_time = FORECASTS.lock().await;
    // The last open Salesforce deal: closing it shifts no other test's pick.
    let (sf_id, deal_id, _, _) = open_deal(&s.lake, "salesforce", Pick::Last).await;
    let before = forecasts(&s.lake).await;
    assert!(before.contains_key(&deal_id));
    let committed = chrono::Utc::now().timestamp_millis() - 777;
    let tk = unique("won");
    // A CDC update of a won deal carries the fields Salesforce derives from the stage.
    let body = json!({
        "ChangeEventHeader": {"entityName": "Opportunity", "recordIds": [sf_id],
                              "changeType": "UPDATE", "transactionKey": tk, "sequenceNumber": 1,
                              "commitTimestamp": committed},
        "StageName": "Closed Won", "IsClosed": true, "IsWon": true, "Probability": 100,
        "ForecastCategory": "Closed"
    })
    .to_string();
    let (status, answer) = send(
        &s.base,
        "/api/webhooks/demo/salesforce",
        body.as_bytes(),
        &revlake_headers(SALESFORCE_SECRET, now_s(), body.as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let states = wait_final(&s.lake, &[format!("salesforce:{tk}:1")]).await;
    assert_eq!(states[0].status, Status::Processed, "{states:?}");
    let staged = query(
        &s.lake,
        &format!("SELECT is_closed, is_won, stage FROM staging.deals WHERE id = '{deal_id}'"),
    )
    .await;
    assert_eq!(
        staged,
        vec![json!({"is_closed": true, "is_won": true, "stage": "closed_won"})]
    );
    let history = history_at(&s.lake, &deal_id, committed).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["to_stage"], json!("closed_won"));
    // The batch forecasts open deals only: the closed deal's row is gone, the rest untouched.
    let after = forecasts(&s.lake).await;
    assert!(!after.contains_key(&deal_id), "{:?}", after.get(&deal_id));
    only_changed(&before, &after, &deal_id, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_relay_stage_change_adds_one_history_row_and_a_replay_none() {
    let s = server().await;
    let _one_at_a_time = FORECASTS.lock().await;
    let (sf_id, deal_id, stage_raw, stage_before) =
        open_deal(&s.lake, "salesforce", Pick::Nth(0)).await;
    let (to, stage) = [
        ("Negotiation/Review", "negotiation"),
        ("Needs Analysis", "discovery"),
    ]
    .into_iter()
    .find(|(raw, _)| *raw != stage_raw)
    .unwrap();
    let before = forecasts(&s.lake).await;
    let committed = chrono::Utc::now().timestamp_millis() - 2500;
    let modified = chrono::DateTime::from_timestamp_millis(committed)
        .unwrap()
        .to_rfc3339();
    let tk = unique("tk");
    let body = json!({
        "ChangeEventHeader": {"entityName": "Opportunity", "recordIds": [sf_id],
                              "changeType": "UPDATE", "changeOrigin": "com/salesforce/api/soap",
                              "transactionKey": tk, "sequenceNumber": 1,
                              "commitTimestamp": committed, "commitUser": "005000000000001"},
        "StageName": to, "LastModifiedDate": modified
    })
    .to_string();
    let path = "/api/webhooks/demo/salesforce";
    let headers = revlake_headers(SALESFORCE_SECRET, now_s(), body.as_bytes());
    let (status, answer) = send(&s.base, path, body.as_bytes(), &headers).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = format!("salesforce:{tk}:1");
    assert_eq!(answer["accepted"], json!([id]));
    let states = wait_final(&s.lake, std::slice::from_ref(&id)).await;
    assert_eq!(states[0].status, Status::Processed, "{states:?}");

    let landed = || async {
        query(
            &s.lake,
            &format!(
                "SELECT stage_name, _sync_id, \
                 CAST(round(date_part('epoch', created_date) * 1000) AS BIGINT) AS at \
                 FROM raw.salesforce_opportunity_history \
                 WHERE opportunity_id = '{sf_id}' AND _sync_id LIKE 'webhook:%'"
            ),
        )
        .await
    };
    let expected =
        vec![json!({"stage_name": to, "_sync_id": format!("webhook:{id}"), "at": committed})];
    assert_eq!(landed().await, expected);
    let history = history_at(&s.lake, &deal_id, committed).await;
    assert_eq!(
        history,
        vec![json!({"to_stage": stage, "to_stage_raw": to, "from_stage": stage_before})]
    );
    let after = forecasts(&s.lake).await;
    assert_eq!(after[&deal_id]["stage"], json!(stage));
    assert_ne!(
        after[&deal_id]["computed_at"],
        before[&deal_id]["computed_at"]
    );
    assert_eq!(after[&deal_id]["runs"], json!(SIM_RUNS));
    only_changed(&before, &after, &deal_id, false);

    // The same request again is a replay: not queued.
    let (status, answer) = send(&s.base, path, body.as_bytes(), &headers).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["duplicates"], json!([id]));
    // The relay sends the same state again as an outbound message (a new notification id): it
    // is processed, but the stage did not change, so no history row is added.
    let notification = unique("n");
    let again = json!([{"notificationId": notification,
                        "sObject": {"type": "Opportunity", "Id": sf_id, "StageName": to,
                                    "LastModifiedDate": modified}}])
    .to_string();
    let (status, answer) = send(
        &s.base,
        path,
        again.as_bytes(),
        &revlake_headers(SALESFORCE_SECRET, now_s(), again.as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let states = wait_final(&s.lake, &[format!("salesforce:{notification}")]).await;
    assert_eq!(states[0].status, Status::Processed, "{states:?}");
    assert_eq!(landed().await, expected, "no second history row");
    assert_eq!(history_at(&s.lake, &deal_id, committed).await.len(), 1);
}

/// Sends a signed Stripe event and waits for its final state.
async fn stripe_event(s: &Server, body: &Value) -> revlake::serve::queue::EventRecord {
    let body = body.to_string();
    let t = now_s();
    let sig = hex::encode(hmac(
        STRIPE_SECRET,
        &[t.to_string().as_bytes(), b".", body.as_bytes()],
    ));
    let (status, answer) = send(
        &s.base,
        "/api/webhooks/demo/stripe",
        body.as_bytes(),
        &[("Stripe-Signature", format!("t={t},v1={sig}"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["accepted"][0].as_str().unwrap().to_string();
    wait_final(&s.lake, &[id]).await.remove(0)
}

fn subscription_event(evt: &str, kind: &str, created: i64, sub: &str, status: &str) -> Value {
    json!({
        "id": evt, "object": "event", "type": kind, "created": created, "livemode": false,
        "data": {"object": {
            "id": sub, "object": "subscription", "customer": "cus_webhook_it", "status": status,
            "currency": "usd", "created": created - 86_400, "start_date": created - 86_400,
            "current_period_start": created - 3600, "current_period_end": created + 30 * 86_400,
            "canceled_at": null, "ended_at": null, "cancel_at_period_end": false,
            "items": {"object": "list", "data": [{"id": "si_1", "quantity": 2,
                      "price": {"id": "price_1", "nickname": "Team", "unit_amount": 5000,
                                "currency": "usd", "recurring": {"interval": "month", "interval_count": 1}}}]}
        }}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_subscription_events_land_and_an_older_one_changes_nothing() {
    let s = server().await;
    let sub = unique("sub");
    let t0 = now_s() - 10_000;
    let staged = || async {
        query(
            &s.lake,
            &format!(
                "SELECT status, plan, mrr_usd FROM staging.subscriptions \
                 WHERE source = 'stripe' AND source_id = '{sub}'"
            ),
        )
        .await
    };

    let created = stripe_event(
        s,
        &subscription_event(
            &unique("evt"),
            "customer.subscription.created",
            t0,
            &sub,
            "trialing",
        ),
    )
    .await;
    assert_eq!(created.status, Status::Processed, "{created:?}");
    assert_eq!(
        staged().await,
        vec![json!({"status": "trialing", "plan": "Team", "mrr_usd": 0.0})]
    );

    let newer = unique("evt");
    let updated = stripe_event(
        s,
        &subscription_event(
            &newer,
            "customer.subscription.updated",
            t0 + 600,
            &sub,
            "past_due",
        ),
    )
    .await;
    assert_eq!(updated.status, Status::Processed, "{updated:?}");
    assert_eq!(
        staged().await,
        vec![json!({"status": "past_due", "plan": "Team", "mrr_usd": 100.0})]
    );
    // Landed as the connector lands the stream: epoch seconds as timestamps, the whole object
    // in source_data, the webhook's event as the sync id and its time as _synced_at.
    let raw = query(
        &s.lake,
        &format!(
            "SELECT arrow_typeof(current_period_end) AS t, _sync_id, _deleted, \
             CAST(date_part('epoch', _synced_at) AS BIGINT) AS synced, \
             json_get(source_data, '/status') AS status \
             FROM raw.stripe_subscriptions WHERE id = '{sub}'"
        ),
    )
    .await;
    assert_eq!(
        raw,
        vec![
            json!({"t": "Timestamp(µs, \"UTC\")", "_sync_id": format!("webhook:stripe:{newer}"),
                    "_deleted": false, "synced": t0 + 600, "status": "past_due"})
        ]
    );

    // Stripe delivers out of order: an update created before the landed state is not applied.
    let older = stripe_event(
        s,
        &subscription_event(
            &unique("evt"),
            "customer.subscription.updated",
            t0 + 300,
            &sub,
            "active",
        ),
    )
    .await;
    assert_eq!(older.status, Status::Skipped, "{older:?}");
    assert!(
        older
            .last_error
            .as_deref()
            .is_some_and(|why| why.contains("older than the state landed")),
        "{older:?}"
    );
    assert_eq!(
        staged().await,
        vec![json!({"status": "past_due", "plan": "Team", "mrr_usd": 100.0})]
    );
    let landed = query(
        &s.lake,
        &format!("SELECT count(*) AS n FROM raw.stripe_webhook_events WHERE object_id = '{sub}'"),
    )
    .await;
    assert_eq!(landed, vec![json!({"n": 3})], "every event is kept");

    // Cancelled: a deleted subscription keeps its row, canceled.
    let gone = stripe_event(
        s,
        &subscription_event(
            &unique("evt"),
            "customer.subscription.deleted",
            t0 + 900,
            &sub,
            "canceled",
        ),
    )
    .await;
    assert_eq!(gone.status, Status::Processed, "{gone:?}");
    assert_eq!(
        staged().await,
        vec![json!({"status": "canceled", "plan": "Team", "mrr_usd": 0.0})]
    );

    // Invoices: `invoice.paid` and `invoice.finalized` of the same second arrive paid first;
    // the earlier state (open) does not undo the payment.
    let invoice = unique("in");
    let t = t0 + 1000;
    let invoice_event = |kind: &str, status: &str, paid: i64| {
        json!({"id": unique("evt"), "object": "event", "type": kind, "created": t,
               "data": {"object": {"id": invoice, "object": "invoice", "customer": "cus_webhook_it",
                                   "subscription": sub, "status": status, "currency": "usd",
                                   "amount_due": 10000, "amount_paid": paid, "created": t - 100,
                                   "status_transitions": {"finalized_at": t - 50,
                                                          "paid_at": (paid > 0).then_some(t)}}}})
    };
    let paid = stripe_event(s, &invoice_event("invoice.paid", "paid", 10000)).await;
    assert_eq!(paid.status, Status::Processed, "{paid:?}");
    let finalized = stripe_event(s, &invoice_event("invoice.finalized", "open", 0)).await;
    assert_eq!(finalized.status, Status::Skipped, "{finalized:?}");
    let invoices = query(
        &s.lake,
        &format!(
            "SELECT status, amount_paid, subscription_id IS NOT NULL AS linked FROM staging.invoices \
             WHERE source = 'stripe' AND source_id = '{invoice}'"
        ),
    )
    .await;
    assert_eq!(
        invoices,
        vec![json!({"status": "paid", "amount_paid": 100.0, "linked": true})]
    );
}
