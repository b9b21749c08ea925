//! `revlake serve` on loopback: a generated org in two workspaces (`demo` and `rival`), mined,
//! scored and checked, served in-process on a free 127.0.0.1 port. Every endpoint, the auth
//! failures, cross-workspace attempts (404 and no leak), bad bodies, the SQL guard and limits,
//! rate limiting, the binary's start and SIGTERM stop, the `keys` commands, and schemathesis
//! against the OpenAPI document.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use revlake::lake::{Lake, WorkspaceId};
use revlake::project::Project;
use revlake::serve::{AppState, ServeConfig, create_key, revoke_key, serve};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn revlake(lake: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(repo())
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shared org: its lake folder and three keys.
struct Org {
    lake: PathBuf,
    demo_key: String,
    rival_key: String,
    revoked_key: String,
}

/// Builds the org once for every test of this module (tests run in parallel and wait for it).
fn org() -> &'static Org {
    static ORG: OnceLock<Org> = OnceLock::new();
    ORG.get_or_init(|| crate::common::on_own_runtime(build_org()))
}

async fn build_org() -> Org {
    // Under target/ (not the system temp folder), kept for the tests of this run; orgs of
    // runs more than a day old are removed.
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(86_400));
        if old
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with("serve-org-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("serve-org-")
        .tempdir_in(parent)
        .unwrap()
        .keep();
    let lake_dir = dir.join("lake");
    let project = Project::load(&repo()).unwrap();
    let lake = Lake::open(&lake_dir.display().to_string()).await.unwrap();
    for (workspace, deals, seed) in [("demo", 400, 11), ("rival", 150, 12)] {
        let ws = WorkspaceId::new(workspace).unwrap();
        let exports = dir.join(format!("exports-{workspace}"));
        let config = revlake::generate::GenerateConfig {
            deals,
            seed,
            ..revlake::generate::GenerateConfig::default()
        };
        revlake::generate::generate(&config, &exports, &mut |_| {}).unwrap();
        revlake::pipeline::land_exports(&lake, &exports, &ws, "sync-1", &mut |_| {})
            .await
            .unwrap();
        revlake::pipeline::transform(&lake, &project, Some(&ws), &mut |_| {})
            .await
            .unwrap();
        for args in [
            vec!["mine", "--workspace", workspace],
            vec!["score", "--workspace", workspace, "--train"],
        ] {
            let (code, _, err) = revlake(&lake_dir, &args);
            assert!(matches!(code, Some(0 | 1)), "{args:?}: {err}");
        }
    }
    let demo = WorkspaceId::new("demo").unwrap();
    let rival = WorkspaceId::new("rival").unwrap();
    let demo_key = create_key(&lake, &demo, Some("tests"))
        .await
        .unwrap()
        .secret;
    let rival_key = create_key(&lake, &rival, None).await.unwrap().secret;
    let revoked = create_key(&lake, &demo, Some("old")).await.unwrap();
    revoke_key(&lake, &revoked.record.key_id).await.unwrap();
    Org {
        lake: lake_dir,
        demo_key,
        rival_key,
        revoked_key: revoked.secret,
    }
}

/// A server running in-process on a free loopback port; stopped when dropped.
struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(config: ServeConfig) -> Server {
    let org = org();
    let lake = Lake::open(&org.lake.display().to_string()).await.unwrap();
    let state = AppState::new(lake, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async move {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        stop: Some(tx),
        client: reqwest::Client::new(),
    }
}

fn generous() -> ServeConfig {
    ServeConfig {
        requests_per_minute: 100_000,
        burst: 10_000,
        ..ServeConfig::default()
    }
}

impl Server {
    async fn get(
        &self,
        key: Option<&str>,
        path: &str,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        let response = r.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, headers)
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_raw(key, path, body.to_string(), "application/json")
            .await
    }

    async fn post_raw(
        &self,
        key: &str,
        path: &str,
        body: String,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection; the whole response.
async fn chunked_post(base: &str, key: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(512) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer and close before the whole body is sent.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// An open deal of the workspace of `key` (from the API itself).
async fn open_deal(server: &Server, key: &str) -> Value {
    let (status, page, _) = server
        .get(Some(key), "/api/deals?status=open&limit=500")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // A deal in a mid stage, so the scenarios apply.
    page["deals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| matches!(d["stage"].as_str(), Some("discovery" | "demo" | "proposal")))
        .cloned()
        .expect("an open deal in discovery, demo or proposal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_from_the_keys_workspace() {
    let org = org();
    let server = start(generous()).await;
    let key = org.demo_key.as_str();

    // Deals: paging, filters, totals.
    let (status, all, _) = server.get(Some(key), "/api/deals?limit=7").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 400, "{total}");
    assert_eq!(all["deals"].as_array().unwrap().len(), 7);
    assert_eq!(all["next_offset"], 7);
    let (_, second, _) = server.get(Some(key), "/api/deals?limit=7&offset=7").await;
    assert_ne!(all["deals"][0]["id"], second["deals"][0]["id"]);
    let ids: Vec<&str> = all["deals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by id");
    let (_, last, _) = server
        .get(
            Some(key),
            &format!("/api/deals?limit=500&offset={}", total - 3),
        )
        .await;
    assert_eq!(last["deals"].as_array().unwrap().len(), 3);
    assert!(last["next_offset"].is_null(), "{}", last["next_offset"]);
    let mut by_status = 0;
    for s in ["open", "won", "lost"] {
        let (status, page, _) = server
            .get(Some(key), &format!("/api/deals?status={s}&limit=500"))
            .await;
        assert_eq!(status, StatusCode::OK);
        for d in page["deals"].as_array().unwrap() {
            let (closed, won) = (
                d["is_closed"].as_bool() == Some(true),
                d["is_won"].as_bool() == Some(true),
            );
            assert_eq!(
                (closed, won),
                match s {
                    "open" => (false, false),
                    "won" => (true, true),
                    _ => (true, false),
                },
                "{d}"
            );
        }
        by_status += page["total"].as_u64().unwrap();
    }
    assert_eq!(by_status, total, "open + won + lost = all");
    let deal = open_deal(&server, key).await;
    let (id, stage, owner) = (
        deal["id"].as_str().unwrap(),
        deal["stage"].as_str().unwrap(),
        deal["owner_id"].as_str().unwrap(),
    );
    let (_, filtered, _) = server
        .get(
            Some(key),
            &format!("/api/deals?stage={stage}&owner={owner}&limit=500"),
        )
        .await;
    let filtered = filtered["deals"].as_array().unwrap();
    assert!(filtered.iter().any(|d| d["id"] == id));
    assert!(
        filtered
            .iter()
            .all(|d| d["stage"] == stage && d["owner_id"] == owner)
    );

    // One deal: its score, history, stakeholders.
    let (status, detail, _) = server.get(Some(key), &format!("/api/deals/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["deal"]["id"], id);
    let p_win = detail["score"]["p_win"]
        .as_f64()
        .expect("open deals are scored");
    assert!((0.0..=1.0).contains(&p_win));
    assert!(
        detail["score"]["top_factors"].is_array(),
        "{}",
        detail["score"]
    );
    let history = detail["stage_history"].as_array().unwrap();
    assert!(!history.is_empty());
    assert_eq!(history.last().unwrap()["to_stage"], stage, "{history:?}");
    assert!(detail["stakeholders"].is_array());
    let (_, sql) = server
        .post(
            key,
            "/api/sql",
            json!({"query": "SELECT deal_id FROM staging.deal_contacts LIMIT 1"}),
        )
        .await;
    let with_people = sql["rows"][0]["deal_id"].as_str().unwrap().to_string();
    let (_, with_contacts, _) = server
        .get(Some(key), &format!("/api/deals/{with_people}"))
        .await;
    let people = with_contacts["stakeholders"].as_array().unwrap();
    assert!(
        !people.is_empty() && people[0]["contact_id"].is_string(),
        "{with_contacts}"
    );

    // Alerts, quality, roster.
    let (status, alerts, _) = server.get(Some(key), "/api/alerts?status=open").await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    let alerts = alerts["alerts"].as_array().unwrap();
    assert!(!alerts.is_empty(), "scoring raised alerts");
    assert!(alerts.iter().all(|a| a["status"] == "open"));
    let (status, quality, _) = server.get(Some(key), "/api/quality").await;
    assert_eq!(status, StatusCode::OK, "{quality}");
    let results = quality["results"].as_array().unwrap();
    assert!(!results.is_empty(), "the transform's checks were recorded");
    let counted: u64 = quality["by_status"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, results.len() as u64);
    let (status, roster, _) = server
        .get(Some(key), "/api/workspaces/demo/sales-roster")
        .await;
    assert_eq!(status, StatusCode::OK, "{roster}");
    let reps = roster["reps"].as_array().unwrap();
    assert!(!reps.is_empty());
    let open: i64 = reps.iter().map(|r| r["open_deals"].as_i64().unwrap()).sum();
    let (_, open_page, _) = server
        .get(Some(key), "/api/deals?status=open&limit=1")
        .await;
    assert!(open as u64 <= open_page["total"].as_u64().unwrap());
    assert!(reps.iter().any(|r| r["id"] == owner));

    // SQL.
    let (status, sql) = server
        .post(key, "/api/sql", json!({"query": "SELECT stage, count(*) AS n FROM staging.deals GROUP BY stage ORDER BY stage"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{sql}");
    let n: i64 = sql["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .sum();
    assert_eq!(n as u64, total);
    assert_eq!(sql["columns"][1]["name"], "n");
    assert_eq!(sql["truncated"], json!(false));

    // Simulation: a what-if, the deal's three views, the pipeline by rep, segment, period.
    let (status, sim) = server
        .post(
            key,
            "/api/simulate",
            json!({"deal_id": id, "scenario": {"type": "accelerate_stage", "params": {"days": 7}}, "n_simulations": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sim}");
    for part in ["baseline", "modified"] {
        let p = sim[part]["p_win"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{sim}");
    }
    let delta = &sim["delta"]["p_win"];
    assert!(delta["low"].as_f64().unwrap() <= delta["estimate"].as_f64().unwrap());
    let expected =
        sim["modified"]["p_win"].as_f64().unwrap() - sim["baseline"]["p_win"].as_f64().unwrap();
    assert!(
        (delta["estimate"].as_f64().unwrap() - expected).abs() < 1e-9,
        "paired delta = difference of the means"
    );
    assert_eq!(sim["confidence"]["n_simulations"], 500);
    assert_eq!(sim["scenario"], "accelerate_stage:7");

    let (status, f, _) = server
        .get(
            Some(key),
            &format!("/api/deals/{id}/forecast?n_simulations=300"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{f}");
    let names: Vec<&str> = f["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["current_trajectory", "best_case", "worst_case"]);
    let p = |i: usize| f["scenarios"][i]["p_win"].as_f64().unwrap();
    assert!(p(1) >= p(2), "best case {} vs worst case {}", p(1), p(2));
    let recs = f["recommendations"].as_array().unwrap();
    assert!(!recs.is_empty(), "{f}");
    assert!(recs.iter().all(|r| {
        r["action"].is_string()
            && r["impact"]
                .as_str()
                .unwrap()
                .starts_with(r["action"].as_str().unwrap())
    }));

    for (by, dimension) in [
        ("rep", "rep"),
        ("segment", "segment"),
        ("period", "workspace"),
    ] {
        let (status, fc, _) = server
            .get(
                Some(key),
                &format!("/api/forecast?by={by}&n_simulations=200"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{fc}");
        let rows = fc["rows"].as_array().unwrap();
        assert!(!rows.is_empty(), "{by}");
        assert!(rows.iter().all(|r| r["dimension"] == dimension), "{by}");
        for r in rows {
            let q = &r["revenue"];
            assert!(
                q["p10"].as_f64().unwrap() <= q["p50"].as_f64().unwrap()
                    && q["p50"].as_f64().unwrap() <= q["p90"].as_f64().unwrap(),
                "{r}"
            );
        }
        if by == "period" {
            assert!(
                rows.iter()
                    .all(|r| r["period_kind"] == "month" || r["period_kind"] == "quarter")
            );
        }
    }

    // The document is open to all and lists every operation.
    let (status, doc, _) = server.get(None, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc["paths"].as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "/api/alerts",
            "/api/deals",
            "/api/deals/{id}",
            "/api/deals/{id}/forecast",
            "/api/forecast",
            "/api/import/connect",
            "/api/import/files",
            "/api/import/files/{upload_id}/apply",
            "/api/import/status/{connection_id}",
            "/api/import/sync/{connection_id}",
            "/api/jobs/{id}",
            "/api/openapi.json",
            "/api/quality",
            "/api/simulate",
            "/api/sql",
            "/api/webhooks/{workspace}/generic",
            "/api/webhooks/{workspace}/hubspot",
            "/api/webhooks/{workspace}/salesforce",
            "/api/webhooks/{workspace}/stripe",
            "/api/workspaces/{id}/sales-roster",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_revoked_keys_get_401() {
    let org = org();
    let server = start(generous()).await;
    let well_formed_unknown = format!("rlk_{}", "0".repeat(64));
    for (key, why) in [
        (None, "no Authorization header"),
        (Some("nope"), "not valid"),
        (Some(well_formed_unknown.as_str()), "not valid"),
        (Some(org.revoked_key.as_str()), "revoked"),
    ] {
        for path in [
            "/api/deals",
            "/api/quality",
            "/api/workspaces/demo/sales-roster",
        ] {
            let (status, body, headers) = server.get(key, path).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {key:?}: {body}");
            assert_eq!(error_code(&body), "unauthorized");
            assert!(error_message(&body).contains(why), "{body}");
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer")
            );
        }
    }
    // Another scheme.
    let response = server
        .client
        .get(format!("{}/api/deals", server.base))
        .basic_auth("demo", Some(&org.demo_key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert!(error_message(&body).contains("Basic"), "{body}");
    // No CORS headers: browsers on other origins are refused.
    let response = server
        .client
        .get(format!("{}/api/deals?limit=1", server.base))
        .bearer_auth(&org.demo_key)
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // A POST without a key is refused before its body is read.
    let response = server
        .client
        .post(format!("{}/api/sql", server.base))
        .json(&json!({"query": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_while_the_server_runs_is_refused() {
    let org = org();
    let lake = Lake::open(&org.lake.display().to_string()).await.unwrap();
    let server = start(ServeConfig {
        key_refresh: Duration::ZERO,
        ..generous()
    })
    .await;
    let created = create_key(&lake, &WorkspaceId::new("rival").unwrap(), Some("temp"))
        .await
        .unwrap();
    let (status, _, _) = server.get(Some(&created.secret), "/api/quality").await;
    assert_eq!(status, StatusCode::OK);
    revoke_key(&lake, &created.record.key_id).await.unwrap();
    let (status, body, _) = server.get(Some(&created.secret), "/api/quality").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(error_message(&body).contains("revoked"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_reads_another_workspace() {
    let org = org();
    let server = start(generous()).await;
    let key = org.demo_key.as_str();
    let rival_deal = open_deal(&server, &org.rival_key).await;
    let rival_id = rival_deal["id"].as_str().unwrap();
    let rival_name = rival_deal["name"].as_str().unwrap();
    let missing = "00000000-0000-5000-8000-000000000000";

    // A rival deal id answers exactly as a missing one does.
    for path in ["/api/deals/{}", "/api/deals/{}/forecast?n_simulations=100"] {
        let (s_rival, b_rival, _) = server.get(Some(key), &path.replace("{}", rival_id)).await;
        let (s_missing, b_missing, _) = server.get(Some(key), &path.replace("{}", missing)).await;
        assert_eq!(s_rival, StatusCode::NOT_FOUND, "{b_rival}");
        assert_eq!(s_missing, StatusCode::NOT_FOUND);
        assert_eq!(
            b_rival.to_string().replace(rival_id, "ID"),
            b_missing.to_string().replace(missing, "ID")
        );
        assert!(!b_rival.to_string().contains(rival_name));
    }
    let (status, body) = server
        .post(
            key,
            "/api/simulate",
            json!({"deal_id": rival_id, "scenario": {"type": "add_champion"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The rival's roster: 404 as for a workspace that does not exist.
    let (s1, b1, _) = server
        .get(Some(key), "/api/workspaces/rival/sales-roster")
        .await;
    let (s2, b2, _) = server
        .get(Some(key), "/api/workspaces/nosuch/sales-roster")
        .await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(
        b1.to_string().replace("rival", "W"),
        b2.to_string().replace("nosuch", "W")
    );
    // The rival key sees its own roster, and none of demo's deals.
    let (status, _, _) = server
        .get(Some(&org.rival_key), "/api/workspaces/rival/sales-roster")
        .await;
    assert_eq!(status, StatusCode::OK);

    // Lists and SQL see only the key's workspace, however the query is written.
    let (_, deals, _) = server.get(Some(key), "/api/deals?limit=500").await;
    assert!(!deals.to_string().contains(rival_id));
    for query in [
        "SELECT DISTINCT workspace_id FROM staging.deals",
        "SELECT DISTINCT workspace_id FROM raw.salesforce_opportunity UNION SELECT DISTINCT workspace_id FROM marts.deal_scores",
        "SELECT DISTINCT d.workspace_id FROM staging.deals d JOIN staging.users u ON u.id = d.owner_id",
        "SELECT DISTINCT workspace_id FROM (SELECT workspace_id FROM marts.alerts UNION ALL SELECT workspace_id FROM ops.quality_results)",
    ] {
        let (status, body) = server.post(key, "/api/sql", json!({"query": query})).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let seen: Vec<&str> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["workspace_id"].as_str().unwrap())
            .collect();
        assert_eq!(seen, ["demo"], "{query}");
    }
    let (_, body) = server
        .post(key, "/api/sql", json!({"query": format!("SELECT count(*) AS n FROM staging.deals WHERE workspace_id = 'rival' OR id = '{rival_id}' OR name = '{}'", rival_name.replace('\'', "''"))}))
        .await;
    assert_eq!(body["rows"][0]["n"], 0, "{body}");
    // The key table is not reachable at all, even the key's own rows.
    let (status, body) = server
        .post(
            key,
            "/api/sql",
            json!({"query": "SELECT key_hash FROM ops.api_keys"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("ops.api_keys"), "{body}");
    let (_, body) = server
        .post(key, "/api/sql", json!({"query": "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name = 'api_keys'"}))
        .await;
    assert_eq!(body["row_count"], 0, "{body}");
    // The seeds (shared project files) and file reads are not there either.
    let (status, _) = server
        .post(
            key,
            "/api/sql",
            json!({"query": "SELECT * FROM seeds.stage_mappings"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .post(
            key,
            "/api/sql",
            json!({"query": "SELECT * FROM '/etc/passwd'"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_bad_sql_get_named_errors() {
    let org = org();
    let server = start(ServeConfig {
        max_body_bytes: 2_048,
        sql_max_rows: 50,
        ..generous()
    })
    .await;
    let key = org.demo_key.as_str();

    // Oversized, with and without a content length.
    let big = json!({"query": format!("SELECT '{}'", "x".repeat(4_000))}).to_string();
    let (status, body) = server
        .post_raw(key, "/api/sql", big.clone(), "application/json")
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "body_too_large");
    // Chunked (no Content-Length): the limit cuts the body off while it is read.
    let response = chunked_post(&server.base, key, "/api/sql", &big).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("body_too_large"), "{response}");

    // Malformed JSON, wrong types, unknown fields, no content type.
    let (status, body) = server
        .post_raw(key, "/api/sql", "{\"query\": ".into(), "application/json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "bad_json");
    assert!(
        error_message(&body).contains("not valid JSON") && error_message(&body).contains("line 1"),
        "{body}"
    );
    let (status, body) = server.post(key, "/api/sql", json!({"query": 42})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("query"), "{body}");
    let (status, body) = server
        .post(
            key,
            "/api/simulate",
            json!({"deal_id": "x", "scenario": {"type": "teleport"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("scenario.type"), "{body}");
    let (status, body) = server
        .post(key, "/api/sql", json!({"query": "SELECT 1", "rows": 3}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("rows"), "{body}");
    let (status, _) = server
        .post_raw(
            key,
            "/api/sql",
            json!({"query": "SELECT 1"}).to_string(),
            "text/plain",
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // SQL that is not one SELECT, or does not plan.
    for (query, named) in [
        ("DELETE FROM staging.deals", "DELETE"),
        ("DROP TABLE staging.deals", "DROP"),
        ("INSERT INTO staging.deals VALUES ('x')", "INSERT"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("SELECT 1; DROP TABLE staging.deals", "found 2"),
        ("SELEC 1", "SELEC"),
        ("SELECT * FROM staging.nope", "staging.nope"),
        ("SELECT no_such_column FROM staging.deals", "no_such_column"),
        ("", "no SQL statement"),
    ] {
        let (status, body) = server.post(key, "/api/sql", json!({"query": query})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(error_message(&body).contains(named), "{query}: {body}");
    }

    // Row limits: the ceiling, and a smaller limit.
    let (status, body) = server
        .post(
            key,
            "/api/sql",
            json!({"query": "SELECT id FROM staging.deals"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["row_count"].as_u64(), body["truncated"].as_bool()),
        (Some(50), Some(true))
    );
    let (_, body) = server
        .post(
            key,
            "/api/sql",
            json!({"query": "SELECT id FROM staging.deals", "limit": 3}),
        )
        .await;
    assert_eq!(body["rows"].as_array().unwrap().len(), 3);
    let (status, body) = server
        .post(key, "/api/sql", json!({"query": "SELECT 1", "limit": 51}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("50"), "{body}");

    // Bad query parameters and simulation settings.
    for path in [
        "/api/deals?status=maybe",
        "/api/deals?limit=0",
        "/api/deals?limit=lots",
        "/api/deals?colour=red",
        "/api/deals?offset=18446744073709551615",
        "/api/forecast?by=planet",
        "/api/forecast?n_simulations=5",
        "/api/alerts?severity=apocalyptic",
    ] {
        let (status, body, _) = server.get(Some(key), path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(error_code(&body).starts_with("bad_"), "{path}: {body}");
    }
    let deal = open_deal(&server, key).await;
    let (status, body) = server
        .post(key, "/api/simulate", json!({"deal_id": deal["id"], "scenario": {"type": "add_champion"}, "n_simulations": 10_000_000}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("20000"), "{body}");
    let (status, body) = server
        .post(key, "/api/simulate", json!({"deal_id": deal["id"], "scenario": {"type": "accelerate_stage", "params": {"days": -2}}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("params.days"), "{body}");
    // A closed deal cannot be simulated.
    let (_, won, _) = server.get(Some(key), "/api/deals?status=won&limit=1").await;
    let (status, body) = server
        .post(
            key,
            "/api/simulate",
            json!({"deal_id": won["deals"][0]["id"], "scenario": {"type": "add_champion"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_message(&body).contains("not open"), "{body}");
    // Unknown routes are JSON 404s.
    let (status, body, _) = server.get(Some(key), "/api/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_the_time_limit_are_stopped() {
    let org = org();
    let server = start(ServeConfig {
        sql_timeout: Duration::from_millis(1),
        ..generous()
    })
    .await;
    let (status, body) = server
        .post(
            &org.demo_key,
            "/api/sql",
            json!({"query": "SELECT count(*) AS n FROM staging.deals a, staging.deals b, staging.deals c"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "query_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_rate_limited_with_retry_after() {
    let org = org();
    let server = start(ServeConfig {
        requests_per_minute: 1,
        burst: 3,
        ..ServeConfig::default()
    })
    .await;
    for i in 0..3 {
        let (status, body, _) = server.get(Some(&org.demo_key), "/api/alerts?limit=1").await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
    }
    let (status, body, headers) = server.get(Some(&org.demo_key), "/api/alerts?limit=1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(error_code(&body), "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another key has its own budget.
    let (status, _, _) = server
        .get(Some(&org.rival_key), "/api/alerts?limit=1")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_commands_create_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let (code, out, err) = revlake(
        &lake,
        &["keys", "create", "--workspace", "acme", "--name", "ci"],
    );
    assert_eq!(code, Some(0), "{err}");
    let secret = out.trim().to_string();
    assert!(secret.starts_with("rlk_") && secret.len() == 68, "{out}");
    let key_id = err
        .lines()
        .find(|l| l.starts_with("created key_"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no key id in {err}"))
        .to_string();
    let (code, out, _) = revlake(&lake, &["keys", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&key_id) && out.contains("acme") && out.contains("active"),
        "{out}"
    );
    assert!(!out.contains(&secret[4..]), "the key is never shown again");
    let mut stored = Vec::new();
    let mut folders = vec![lake.join("ops/api_keys")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap().filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                stored.push(std::fs::read(path).unwrap());
            }
        }
    }
    assert!(!stored.is_empty());
    assert!(
        stored
            .iter()
            .all(|b| !b.windows(20).any(|w| w == &secret.as_bytes()[4..24])),
        "only the hash is stored"
    );
    let (code, _, err) = revlake(&lake, &["keys", "revoke", &key_id]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = revlake(&lake, &["keys", "list"]);
    assert!(!out.contains("active"), "{out}");
    let (code, _, err) = revlake(&lake, &["keys", "revoke", &key_id]);
    assert_eq!(code, Some(2));
    assert!(err.contains("already revoked"), "{err}");
    let (code, _, err) = revlake(&lake, &["keys", "revoke", "key_nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("key_nope"), "{err}");
    let (code, _, err) = revlake(&lake, &["keys", "create", "--workspace", "a b"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("a b"), "{err}");
    let (code, out, _) = revlake(&lake, &["serve", "--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Examples:") && out.contains("--rate-limit"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_on_sigterm() {
    let org = org();
    let mut child = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(repo())
        .arg("--lake")
        .arg(&org.lake)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("REVLAKE_LAKE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_string();
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{base}/api/deals?limit=1"))
        .bearer_auth(&org.demo_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    // Bad flags exit 2 with the flag named.
    let (code, _, err) = revlake(
        &org.lake,
        &["serve", "--addr", "127.0.0.1:0", "--sql-timeout", "0"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("--sql-timeout"), "{err}");
    let (code, _, err) = revlake(&org.lake, &["serve", "--addr", "not-an-address"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not-an-address"), "{err}");
}

/// The schemathesis command: on PATH or in `.ci/run`'s virtualenv; under CI (env `CI` set) a
/// missing one fails the test.
fn schemathesis() -> Option<PathBuf> {
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/revlake/venvs/schemathesis/bin/schemathesis"));
    let found = venv.filter(|p| p.is_file()).or_else(|| {
        Command::new("schemathesis")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from("schemathesis"))
    });
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("schemathesis is not installed but CI is set: .ci/run installs it");
    }
    if found.is_none() {
        eprintln!(
            "skipping the schemathesis run: `bash .ci/run` installs it (pinned, in ~/.cache/revlake/venvs/schemathesis)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_or_schema_mismatches() {
    let Some(st) = schemathesis() else {
        return;
    };
    let org = org();
    let server = start(ServeConfig {
        max_simulations: 500,
        ..generous()
    })
    .await;
    let base = server.base.clone();
    let key = org.demo_key.clone();
    let workdir = tempfile::tempdir().unwrap();
    let cwd = workdir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(st)
            .args([
                "--no-color",
                "run",
                &format!("{base}/api/openapi.json"),
                "--header",
                &format!("Authorization: Bearer {key}"),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--phases",
                "examples,fuzzing",
                "--mode",
                "positive",
                "--max-examples",
                "5",
                "--workers",
                "1",
                "--request-timeout",
                "60",
                "--seed",
                "1",
                "--generation-database",
                "none",
            ])
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(cwd.join("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(cwd.join("stderr.txt")).unwrap())
            .spawn()
            .unwrap();
        // The time limit of the whole run.
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("schemathesis ran over 600 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let status = child.wait().unwrap();
        let read = |f: &str| std::fs::read_to_string(cwd.join(f)).unwrap_or_default();
        (status, read("stdout.txt"), read("stderr.txt"))
    })
    .await
    .unwrap();
    let (status, stdout, stderr) = out;
    assert!(status.success(), "schemathesis failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Tested: 19"), "{stdout}");
    assert!(!stdout.contains("nresolvable"), "{stdout}");
}
