//! The pipeline dashboard of `revlake serve` on loopback: a generated org in two workspaces
//! (`dash`, with one deal renamed to a hostile HTML string, and `other`), landed, transformed,
//! mined, scored, forecast and checked; and an empty lake. Every page with figures computed here
//! from the JSON API or the lake, the login flow (form, cookie, one-time link, logout, revoked
//! key, cross-site post), workspace isolation, escaping, the empty-lake messages, and the real
//! binary in headless Chromium (pages load, charts render, no console errors, screenshots under
//! `target/test-artifacts/dashboard/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use revlake::lake::{Lake, WorkspaceId};
use revlake::project::Project;
use revlake::serve::{AppState, ServeConfig, create_key, revoke_key, serve};
use serde_json::Value;

const HOSTILE: &str = "<script>alert(\"pwned\")</script> & Co";

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

struct Org {
    lake: PathBuf,
    empty_lake: PathBuf,
    key: String,
    other_key: String,
    revoked_key: String,
    empty_key: String,
}

fn org() -> &'static Org {
    static ORG: OnceLock<Org> = OnceLock::new();
    ORG.get_or_init(|| crate::common::on_own_runtime(build_org()))
}

/// Renames the first open Salesforce opportunity of the export to [`HOSTILE`].
fn rename_an_open_deal(exports: &Path) {
    let path = exports.join("salesforce/Opportunity.csv");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let name = headers.iter().position(|h| h == "Name").unwrap();
    let closed = headers.iter().position(|h| h == "IsClosed").unwrap();
    let mut rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let open = rows.iter().position(|r| &r[closed] == "false").unwrap();
    let mut fields: Vec<String> = rows[open].iter().map(str::to_string).collect();
    fields[name] = HOSTILE.to_string();
    rows[open] = csv::StringRecord::from(fields);
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_path(&path)
        .unwrap();
    writer.write_record(&headers).unwrap();
    for r in &rows {
        writer.write_record(r).unwrap();
    }
    writer.flush().unwrap();
}

async fn build_org() -> Org {
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
                .starts_with("dashboard-org-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("dashboard-org-")
        .tempdir_in(parent)
        .unwrap()
        .keep();
    let lake_dir = dir.join("lake");
    let project = Project::load(&repo()).unwrap();
    let lake = Lake::open(&lake_dir.display().to_string()).await.unwrap();
    for (workspace, deals, seed) in [("dash", 300, 21), ("other", 120, 22)] {
        let ws = WorkspaceId::new(workspace).unwrap();
        let exports = dir.join(format!("exports-{workspace}"));
        let config = revlake::generate::GenerateConfig {
            deals,
            seed,
            ..revlake::generate::GenerateConfig::default()
        };
        revlake::generate::generate(&config, &exports, &mut |_| {}).unwrap();
        if workspace == "dash" {
            rename_an_open_deal(&exports);
        }
        revlake::pipeline::land_exports(&lake, &exports, &ws, "sync-1", &mut |_| {})
            .await
            .unwrap();
        revlake::pipeline::transform(&lake, &project, Some(&ws), &mut |_| {})
            .await
            .unwrap();
        for args in [
            vec!["mine", "--workspace", workspace],
            vec!["score", "--workspace", workspace, "--train"],
            vec![
                "forecast",
                "--workspace",
                workspace,
                "--runs",
                "500",
                "--no-recommendations",
            ],
            vec!["check", "--workspace", workspace],
        ] {
            let (code, _, err) = revlake(&lake_dir, &args);
            assert!(matches!(code, Some(0 | 1)), "{args:?}: {err}");
        }
    }
    let key = create_key(&lake, &WorkspaceId::new("dash").unwrap(), Some("dash"))
        .await
        .unwrap()
        .secret;
    let other_key = create_key(&lake, &WorkspaceId::new("other").unwrap(), None)
        .await
        .unwrap()
        .secret;
    let revoked = create_key(&lake, &WorkspaceId::new("dash").unwrap(), Some("old"))
        .await
        .unwrap();
    revoke_key(&lake, &revoked.record.key_id).await.unwrap();

    let empty_dir = dir.join("empty-lake");
    let empty = Lake::open(&empty_dir.display().to_string()).await.unwrap();
    let empty_key = create_key(&empty, &WorkspaceId::new("dash").unwrap(), None)
        .await
        .unwrap()
        .secret;
    Org {
        lake: lake_dir,
        empty_lake: empty_dir,
        key,
        other_key,
        revoked_key: revoked.secret,
        empty_key,
    }
}

/// A server in-process on a free loopback port; stopped when dropped.
struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Follows no redirect and keeps no cookie: the tests look at both.
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(lake: &Path) -> Server {
    let lake = Lake::open(&lake.display().to_string()).await.unwrap();
    let config = ServeConfig {
        requests_per_minute: 100_000,
        burst: 10_000,
        ..ServeConfig::default()
    };
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
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

impl Server {
    async fn page(&self, auth: Auth<'_>, path: &str) -> (StatusCode, String, HeaderMap) {
        let mut r = self.client.get(format!("{}{path}", self.base));
        r = match auth {
            Auth::None => r,
            Auth::Bearer(k) => r.bearer_auth(k),
            Auth::Cookie(c) => r.header("cookie", c),
        };
        let response = r.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, response.text().await.unwrap(), headers)
    }

    async fn html(&self, key: &str, path: &str) -> String {
        let (status, body, headers) = self.page(Auth::Bearer(key), path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        body
    }

    async fn api(&self, key: &str, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }

    /// Every deal of the key's workspace (paged through the API).
    async fn deals(&self, key: &str, status: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .api(
                    key,
                    &format!("/api/deals?status={status}&limit=500&offset={offset}"),
                )
                .await;
            let deals = page["deals"].as_array().unwrap().clone();
            out.extend(deals);
            match page["next_offset"].as_u64() {
                Some(n) => offset = n,
                None => return out,
            }
        }
    }
}

/// The table row (or element) with `id`, up to its end.
fn row<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no id=\"{id}\" in the page"));
    let rest = &html[at..];
    let end = rest
        .find("</tr>")
        .or_else(|| rest.find("</div>"))
        .unwrap_or(rest.len());
    &rest[..end]
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.round().abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v.round() < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

fn money(v: f64) -> String {
    let t = thousands(v);
    match t.strip_prefix('-') {
        Some(rest) => format!("-${rest}"),
        None => format!("${t}"),
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("revlake_key="))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_page_has_the_reps_and_stages_of_the_api() {
    let org = org();
    let server = start(&org.lake).await;
    let html = server.html(&org.key, "/pipeline").await;
    let open = server.deals(&org.key, "open").await;
    assert!(!open.is_empty());
    assert!(
        row(&html, "open-deals").contains(&format!(">{}<", thousands(open.len() as f64))),
        "{}",
        row(&html, "open-deals")
    );
    let amount = |d: &Value| {
        d["amount_usd"]
            .as_f64()
            .or(d["amount"].as_f64())
            .unwrap_or(0.0)
    };
    let open_amount: f64 = open.iter().map(amount).sum();
    assert!(row(&html, "open-amount").contains(&money(open_amount)));
    // Per stage: the open deals the API lists in it.
    let mut by_stage: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for d in &open {
        let e = by_stage
            .entry(d["stage"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 += amount(d);
    }
    for (stage, (n, total)) in &by_stage {
        let r = row(&html, &format!("stage-{stage}"));
        assert!(
            r.contains(&format!(
                "<td class=\"n\">{n}</td><td class=\"n\">{}</td>",
                money(*total)
            )),
            "{stage}: {r}"
        );
    }
    // The rep table agrees with the sales roster endpoint.
    let roster = server
        .api(&org.key, "/api/workspaces/dash/sales-roster")
        .await;
    let mut checked = 0;
    for rep in roster["reps"].as_array().unwrap() {
        let open_deals = rep["open_deals"].as_i64().unwrap();
        let (won, lost) = (
            rep["won_deals"].as_i64().unwrap(),
            rep["lost_deals"].as_i64().unwrap(),
        );
        if open_deals == 0 && won + lost == 0 {
            continue;
        }
        let r = row(&html, &format!("rep-{}", rep["id"].as_str().unwrap()));
        assert!(
            r.contains(&format!("<td class=\"n\">{open_deals}</td>")),
            "{r}"
        );
        assert!(
            r.contains(&money(rep["open_amount"].as_f64().unwrap())),
            "{r}"
        );
        if won + lost > 0 {
            assert!(r.contains(&pct(won as f64 / (won + lost) as f64)), "{r}");
            assert!(r.contains(&format!("{won} / {}", won + lost)), "{r}");
        }
        checked += 1;
    }
    assert!(checked >= 2, "reps checked: {checked}");
    assert!(html.contains("<svg"), "the stage chart is inline SVG");
    assert!(!html.contains("run <code>revlake score"), "scores exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executive_page_has_health_forecast_and_win_rates() {
    let org = org();
    let server = start(&org.lake).await;
    let html = server.html(&org.key, "/").await;
    // Win rates by segment over the last 12 months with closes, from the API's closed deals.
    let mut closed = server.deals(&org.key, "won").await;
    let won_ids: Vec<String> = closed
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    closed.extend(server.deals(&org.key, "lost").await);
    let month = |d: &Value| d["closed_at"].as_str().map(|t| t[..7].to_string());
    let mut months: Vec<String> = closed.iter().filter_map(month).collect();
    months.sort();
    months.dedup();
    let window: Vec<String> = months.iter().rev().take(12).cloned().collect();
    let mut by_segment: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for d in &closed {
        let Some(m) = month(d) else { continue };
        if !window.contains(&m) {
            continue;
        }
        let segment = d["segment"]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("(none)")
            .to_string();
        let e = by_segment.entry(segment).or_default();
        e.1 += 1;
        if won_ids.iter().any(|w| w == d["id"].as_str().unwrap()) {
            e.0 += 1;
        }
    }
    assert!(!by_segment.is_empty());
    for (segment, (won, n)) in &by_segment {
        let r = row(&html, &format!("winrate-{segment}"));
        let expected = format!("{} ({won}/{n})", pct(*won as f64 / *n as f64));
        assert!(r.contains(&expected), "{segment}: want {expected} in {r}");
    }
    // The forecast rows of marts.pipeline_forecast, read here with SQL.
    let lake = Lake::open(&org.lake.display().to_string()).await.unwrap();
    let session = revlake::sql::SqlSession::open(
        &lake,
        &revlake::sql::SessionOptions {
            workspace: Some(WorkspaceId::new("dash").unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let batches = session
        .query(
            "SELECT view, p10, p50, p90 FROM marts.pipeline_forecast \
             WHERE dimension = 'workspace' AND period_kind = 'all' ORDER BY view",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let rows = revlake::serve::rows::to_json_rows(&batches).unwrap();
    assert_eq!(rows.len(), 3, "three views");
    for r in rows {
        let tr = row(&html, &format!("forecast-{}", r["view"].as_str().unwrap()));
        for q in ["p10", "p50", "p90"] {
            assert!(tr.contains(&money(r[q].as_f64().unwrap())), "{q}: {tr}");
        }
    }
    // The health index as `revlake score` computes it.
    let inputs = revlake::scoring::load_inputs(&lake, &WorkspaceId::new("dash").unwrap())
        .await
        .unwrap();
    let facts = revlake::scoring::trends::facts(&inputs);
    match revlake::scoring::trends::health_index(&facts, inputs.as_of) {
        Some(h) => assert!(
            row(&html, "health-index").contains(&format!(">{:.1}<", h.index)),
            "{}",
            row(&html, "health-index")
        ),
        None => assert!(html.contains("id=\"health-note\"")),
    }
    let svgs = html.matches("<svg").count();
    assert!(svgs >= 3, "health, forecast and win-rate charts: {svgs}");
    assert!(!html.contains("<script"), "no script on the page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deal_page_matches_the_api_and_escapes_the_name() {
    let org = org();
    let server = start(&org.lake).await;
    let open = server.deals(&org.key, "open").await;
    let hostile = open
        .iter()
        .find(|d| d["name"].as_str() == Some(HOSTILE))
        .expect("the renamed deal is open in dash");
    let id = hostile["id"].as_str().unwrap();
    let html = server.html(&org.key, &format!("/deals/{id}")).await;
    assert!(!html.contains("<script>alert"), "the name is escaped");
    assert!(
        html.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;&#x2f;script&gt; &amp; Co"),
        "{}",
        row(&html, "deal-name")
    );
    let detail = server.api(&org.key, &format!("/api/deals/{id}")).await;
    if let Some(p) = detail["score"]["p_win"].as_f64() {
        assert!(row(&html, "score-p-win").contains(&pct(p)));
    }
    for change in detail["stage_history"].as_array().unwrap() {
        let to = change["to_stage"].as_str().unwrap();
        assert!(html.contains(&format!("<td>{to}</td>")), "history {to}");
    }
    let forecast = server
        .api(&org.key, &format!("/api/deals/{id}/forecast"))
        .await;
    for s in forecast["scenarios"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let r = row(&html, &format!("scenario-{name}"));
        assert!(r.contains(&pct(s["p_win"].as_f64().unwrap())), "{r}");
    }
    assert!(html.contains("<svg"), "the scenario chart");

    // A closed deal has no scenarios, and says why.
    let won = server.deals(&org.key, "won").await;
    let closed_id = won[0]["id"].as_str().unwrap();
    let html = server.html(&org.key, &format!("/deals/{closed_id}")).await;
    assert!(html.contains("only open deals are simulated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspaces_deal_is_not_found_and_never_shown() {
    let org = org();
    let server = start(&org.lake).await;
    let theirs = server.deals(&org.other_key, "open").await;
    let deal = &theirs[0];
    let id = deal["id"].as_str().unwrap();
    let name = deal["name"].as_str().unwrap();
    let (status, body, _) = server
        .page(Auth::Bearer(&org.key), &format!("/deals/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        !body.contains(name),
        "the other workspace's deal name leaked"
    );
    let (status, _, _) = server
        .page(Auth::Bearer(&org.key), "/deals/no-such-deal")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The owner sees it; and neither page lists the other's reps.
    let mine = server.html(&org.other_key, &format!("/deals/{id}")).await;
    assert!(mine.contains("workspace <strong>other</strong>"));
    let pipeline = server.html(&org.key, "/pipeline").await;
    let roster = server
        .api(&org.other_key, "/api/workspaces/other/sales-roster")
        .await;
    let dash_roster = server
        .api(&org.key, "/api/workspaces/dash/sales-roster")
        .await;
    let ours: Vec<&str> = dash_roster["reps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for rep in roster["reps"].as_array().unwrap() {
        let rid = rep["id"].as_str().unwrap();
        if !ours.contains(&rid) {
            assert!(!pipeline.contains(&format!("rep-{rid}\"")), "{rid} leaked");
        }
    }
    // The key table is not listed among the datasets.
    let quality = server.html(&org.key, "/quality").await;
    assert!(!quality.contains("ops.api_keys"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quality_page_has_the_latest_checks_and_freshness() {
    let org = org();
    let server = start(&org.lake).await;
    let html = server.html(&org.key, "/quality").await;
    let report = server.api(&org.key, "/api/quality").await;
    let by_status = report["by_status"].as_object().unwrap();
    assert!(!by_status.is_empty(), "the fixture ran checks");
    for (status, n) in by_status {
        assert!(
            row(&html, &format!("checks-{status}")).contains(&format!(">{n}<")),
            "{status}"
        );
    }
    assert!(row(&html, "fresh-staging.deals").contains("staging.deals"));
    assert!(html.contains("Every dataset was refreshed in the last 26h"));
    // Everything is stale once the threshold is a second and the data a moment older.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let html = server.html(&org.key, "/quality?stale_after=1s").await;
    assert!(row(&html, "stale-warning").contains("not refreshed in the last 1s"));
    assert!(row(&html, "fresh-staging.deals").contains("STALE"));
    let (status, body, _) = server
        .page(Auth::Bearer(&org.key), "/quality?stale_after=soon")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("stale_after=soon"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_sets_a_strict_httponly_cookie_and_pages_need_it() {
    let org = org();
    let server = start(&org.lake).await;
    // No key: to the login form, keeping the page asked.
    let (status, _, headers) = server.page(Auth::None, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/login");
    let (status, _, headers) = server.page(Auth::None, "/deals/abc").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/login?next=/deals/abc");
    let (status, form, _) = server.page(Auth::None, "/login?next=/pipeline").await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("name=\"key\"") && form.contains("value=\"&#x2f;pipeline\""));

    let post = |fields: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut r = server
            .client
            .post(format!("{}/login", server.base))
            .form(&fields);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    // A wrong key: the form again, 401, no cookie.
    let response = post(vec![("key", "rlk_nope".into())], None).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_of(response.headers()).is_none());
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("id=\"login-error\"")
    );
    // A revoked key is refused too.
    let response = post(vec![("key", org.revoked_key.clone())], None)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // From another site: refused.
    let response = post(vec![("key", org.key.clone())], Some("http://evil.example"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(cookie_of(response.headers()).is_none());
    // The right key: a cookie, and back to the page asked (never to another site).
    let response = post(
        vec![("key", org.key.clone()), ("next", "/pipeline".into())],
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/pipeline");
    let cookie = cookie_of(response.headers()).unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let (status, body, _) = server.page(Auth::Cookie(&pair), "/pipeline").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("workspace <strong>dash</strong>"));
    let response = post(
        vec![
            ("key", org.key.clone()),
            ("next", "//evil.example/x".into()),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.headers()[LOCATION], "/");
    // A cookie with a revoked or made-up key: 401, and the cookie is dropped.
    let (status, _, headers) = server
        .page(
            Auth::Cookie(&format!("revlake_key={}", org.revoked_key)),
            "/",
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie_of(&headers).unwrap().contains("Max-Age=0"));
    // Logging out drops it.
    let response = server
        .client
        .post(format!("{}/logout", server.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(cookie_of(response.headers()).unwrap().contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_login_link_works_once() {
    let org = org();
    let server = start(&org.lake).await;
    let response = server
        .client
        .post(format!("{}/login/link", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "needs a bearer key"
    );
    let response = server
        .client
        .post(format!("{}/login/link", server.base))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let link: Value = response.json().await.unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(!url.contains(&org.key), "the key is never in the link");
    let (status, _, headers) = server
        .page(Auth::None, &format!("{url}&next=/quality"))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/quality");
    let cookie = cookie_of(&headers).unwrap();
    let pair = cookie.split(';').next().unwrap();
    let (status, _, _) = server.page(Auth::Cookie(pair), "/quality").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, headers) = server.page(Auth::None, url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "used once only");
    assert!(cookie_of(&headers).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_lake_says_what_is_missing_and_how_to_make_it() {
    let org = org();
    let server = start(&org.empty_lake).await;
    let html = server.html(&org.empty_key, "/").await;
    assert!(html.contains("No <code>staging.deals</code>"), "{html}");
    assert!(html.contains("run <code>revlake forecast</code>"));
    assert!(html.contains("run <code>revlake score</code>"));
    let html = server.html(&org.empty_key, "/pipeline").await;
    assert!(html.contains("No <code>staging.deals</code>"));
    let html = server.html(&org.empty_key, "/quality").await;
    assert!(html.contains("run <code>revlake check</code>"));
    assert!(
        html.contains("run <code>revlake run</code>"),
        "no dataset but the key table"
    );
    let (status, _, _) = server
        .page(Auth::Bearer(&org.empty_key), "/deals/anything")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn the_api_routes_stay_json_and_unknown_pages_are_404() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let org = org();
        let server = start(&org.lake).await;
        let (status, body, _) = server.page(Auth::None, "/api/deals").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the API still wants a bearer key"
        );
        assert!(body.starts_with('{'));
        let (status, _, _) = server.page(Auth::Bearer(&org.key), "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

/// The real binary in headless Chromium: log in with a one-time link, load every page, check
/// that the charts are in the rendered DOM and that the console has no error, and keep a
/// screenshot of each page under `target/test-artifacts/dashboard/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        assert!(
            std::env::var("CI").is_err(),
            "headless Chromium is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: no chromium on PATH; the dashboard was not rendered in a browser");
        return;
    };
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
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _child = Kill(child);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .trim_end_matches('/')
        .to_string();
    let client = reqwest::Client::new();
    let open: Value = client
        .get(format!("{base}/api/deals?status=open&limit=1"))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deal = open["deals"][0]["id"].as_str().unwrap().to_string();
    let artifacts = repo().join("target/test-artifacts/dashboard");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let base_args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let pages = [
        ("executive", "/".to_string(), 3),
        ("pipeline", "/pipeline".to_string(), 1),
        ("deal", format!("/deals/{deal}"), 1),
        ("quality", "/quality".to_string(), 0),
    ];
    for (i, (name, path, charts)) in pages.iter().enumerate() {
        // A fresh one-time link per browser run (each run is its own browser session).
        let mut urls = Vec::new();
        for _ in 0..2 {
            let link: Value = client
                .post(format!("{base}/login/link"))
                .bearer_auth(&org.key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            urls.push(format!(
                "{base}{}&next={path}",
                link["url"].as_str().unwrap()
            ));
        }
        let shot = artifacts.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        let out = Command::new(chromium)
            .args(base_args)
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join(format!("shot-{i}")).display()
            ))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,2400")
            .arg(&urls[0])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: chromium failed: {stderr}");
        for line in stderr.lines() {
            assert!(
                !(line.contains("CONSOLE") || line.contains("Uncaught")),
                "{name}: console message: {line}"
            );
        }
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: {} bytes",
            png.len()
        );
        let dom = Command::new(chromium)
            .args(base_args)
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join(format!("dom-{i}")).display()
            ))
            .arg("--dump-dom")
            .arg(&urls[1])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&dom.stderr);
        for line in stderr.lines() {
            assert!(
                !(line.contains("CONSOLE") || line.contains("Uncaught")),
                "{name}: console message: {line}"
            );
        }
        let dom = String::from_utf8_lossy(&dom.stdout);
        assert!(
            dom.contains("workspace <strong>dash</strong>"),
            "{name}: not logged in or not loaded: {}",
            &dom[..dom.len().min(400)]
        );
        let svgs = dom.matches("<svg").count();
        assert!(
            svgs >= *charts,
            "{name}: {svgs} charts in the DOM, want {charts}"
        );
        std::fs::write(artifacts.join(format!("{name}.html")), dom.as_bytes()).unwrap();
    }
}
