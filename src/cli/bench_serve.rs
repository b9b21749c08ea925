//! `revlake bench serve`: the load test of the HTTP API on loopback (issue 12).
//!
//! ```text
//! demo org (generated, or the lake's) ─▶ API key ─▶ serve() on 127.0.0.1:<free port>, in-process
//!   phase 1: C clients ─POST /api/simulate─────────────────────▶ latency, status per request
//!   phase 2: C clients ─POST /api/webhooks/<ws>/hubspot (v3)───▶ ack latency, accepted ids
//!            wait (bounded) ─▶ ops.webhook_events: every acknowledged id journaled and final?
//! ```
//!
//! The server is the library's [`serve`] on a task of this process (graceful shutdown at the
//! end), with the webhook receivers and their durable queue: what `revlake serve` runs.

mod load;
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use revlake::generate::{GenerateConfig, generate};
use revlake::jobs::config::LandStage;
use revlake::jobs::lease::holder_id;
use revlake::jobs::schedule::parse_duration;
use revlake::jobs::scheduler::{LeasedRun, run_leased};
use revlake::jobs::{Job, RunRequest, RunStatus};
use revlake::lake::{DatasetRef, Lake, WorkspaceId};
use revlake::project::{Pipeline, PipelineFile, Project};
use revlake::serve::queue::{EventRecord, Status, current_states, read_journal};
use revlake::serve::webhooks::Webhooks;
use revlake::serve::{AppState, ServeConfig, create_key, serve};
use revlake::sql::{SessionOptions, SqlSession};

use super::{Global, progress};
use load::{PhaseReport, latency, run_phase};
use report::{EventsReport, RateLimit, Report};

/// Load-test `revlake serve` on loopback: POST /api/simulate, then signed HubSpot webhooks.
///
/// Builds a demo org (as `revlake demo` does: generated exports, then models, mining and
/// scoring) in a temporary lake, or uses the workspace of the lake given with the global
/// `--lake DIR` when it has open deals (`--lake temp`: a temporary one, the default). It creates
/// an API key, starts the server in this process on a free 127.0.0.1 port, and runs two phases
/// of `--duration` each with `--concurrency` clients: simulations over the open deals, then
/// HubSpot v3 batches of 1–10 deal.propertyChange events (dealstage or amount of open HubSpot
/// deals, distinct event ids). It then waits (at most `--drain-timeout`) until the queue has
/// processed every acknowledged event and checks ops.webhook_events: nothing lost, none failed.
///
/// Prints per phase requests, requests/s, p50/p90/p99/max latency of the 2xx answers
/// (nearest-rank percentiles over every sample) and the other answers by status; then the
/// events acknowledged / journaled / processed / lost and their receipt → processed latency from
/// the journal. Exits 1 when an acknowledged event is lost, failed or unprocessed, or any
/// request got a 5xx or no answer.
///
/// The per-key rate limit is lifted unless `--rate-limit` is given, so the simulate phase
/// measures the server, not the limiter; 429s are counted and reported either way. A reused
/// lake is written to: an API key, the webhook journal, and the events' changes to
/// raw.hubspot_deals, staging.deals and the scores of the workspace. The webhook secret is read
/// from REVLAKE_BENCH_HUBSPOT_SECRET (a random one when unset).
///
/// Run it on a release build: `cargo run --release -- bench serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake bench serve --deals 20000 --duration 30s\n  revlake bench serve --deals 2000 --duration 10s --concurrency 4 --json\n  revlake --lake /tmp/bench-lake bench serve --rate-limit 600   # keep the lake; serve's default limit"
)]
pub struct ServeBenchArgs {
    /// Deals in the generated org (used when the lake has no open deals in the workspace).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(50..))]
    deals: u64,
    /// Random seed of the generated org and of the webhook events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How long each phase sends requests (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = positive_duration)]
    duration: Duration,
    /// Clients sending at once in each phase (each waits for its answer before the next).
    #[arg(long, default_value_t = 8, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// The workspace the org is in.
    #[arg(long, default_value = "demo", value_name = "W")]
    workspace: String,
    /// Monte Carlo runs of each simulate request (what a request without n_simulations gets).
    #[arg(long, default_value_t = 2_000, value_name = "N", value_parser = clap::value_parser!(u32).range(100..=20_000))]
    simulations: u32,
    /// Simulations the server runs at once (`revlake serve --concurrent-simulations`).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrent_simulations: u32,
    /// Requests per minute the bench's key may make (burst 60, as `revlake serve --rate-limit N`).
    /// Default: lifted (1e9 per minute, burst 1e6).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: Option<u32>,
    /// Longest wait, after the webhook phase, for the queue to process the acknowledged events.
    #[arg(long, default_value = "300s", value_name = "DURATION", value_parser = positive_duration)]
    drain_timeout: Duration,
    /// Print the results as one JSON object (progress goes to the log on stderr).
    #[arg(long)]
    json: bool,
}

/// The environment variable the bench's webhook receiver reads its HubSpot secret from.
const SECRET_ENV: &str = "REVLAKE_BENCH_HUBSPOT_SECRET";
/// The rate limit when not given: high enough never to answer 429 on loopback.
const LIFTED_PER_MINUTE: u32 = 1_000_000_000;
const LIFTED_BURST: u32 = 1_000_000;
/// `revlake serve --burst`'s default, used with `--rate-limit`.
const SERVE_BURST: u32 = 60;

fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(format!(
            "`{text}` is zero: give a positive duration, e.g. 30s"
        ));
    }
    Ok(d)
}

/// Prints a step: on stdout for people, to the log when stdout carries JSON.
#[derive(Clone, Copy)]
struct Say {
    json: bool,
}

impl Say {
    fn line(self, text: &str) {
        if self.json {
            tracing::info!("{text}");
        } else {
            println!("{text}");
        }
    }
}

pub async fn run(global: &Global, args: ServeBenchArgs) -> Result<ExitCode> {
    // First, before anything else of this process reads the environment.
    let secret = hubspot_secret();
    let say = Say { json: args.json };
    let workspace = WorkspaceId::new(&args.workspace)
        .with_context(|| format!("--workspace {}", args.workspace))?;
    let shipped = global.project()?;
    let temp = tempfile::Builder::new()
        .prefix("revlake-bench-serve-")
        .tempdir()
        .context("creating a temporary folder")?;
    let lake_url = match global.lake.as_deref() {
        None | Some("temp") => temp.path().join("lake").display().to_string(),
        Some(url) => url.to_string(),
    };
    let lake = Lake::open(&lake_url)
        .await
        .with_context(|| format!("opening the lake {lake_url}"))?;
    say.line(&format!(
        "revlake bench serve: lake {}, workspace {workspace}, {} clients, {} per phase",
        lake.url(),
        args.concurrency,
        humantime(args.duration)
    ));

    let mut deals = open_deals(&lake, &workspace).await?;
    if deals.is_empty() {
        build_org(&shipped, &lake, &workspace, &args, temp.path(), say).await?;
        deals = open_deals(&lake, &workspace).await?;
    } else {
        say.line(&format!(
            "  reusing workspace {workspace} of the lake (--deals applies to a generated org only)"
        ));
    }
    let deal_ids: Vec<String> = deals.iter().map(|d| d.id.clone()).collect();
    let hubspot: Vec<String> = deals
        .iter()
        .filter(|d| d.source == "hubspot")
        .filter_map(|d| d.source_id.clone())
        .collect();
    if deal_ids.is_empty() {
        bail!(
            "workspace {workspace} of {} has no open deals in staging.deals after building the org: nothing to simulate",
            lake.url()
        );
    }
    if hubspot.is_empty() {
        bail!(
            "workspace {workspace} of {} has no open HubSpot deals in staging.deals: the webhook phase changes those (a generated org has them)",
            lake.url()
        );
    }
    let key = create_key(&lake, &workspace, Some("bench serve"))
        .await
        .with_context(|| format!("creating an API key for workspace {workspace}"))?;

    // The server, as `revlake serve` runs it, with the HubSpot receiver of the workspace on.
    let project = Arc::new(with_hubspot_receiver(shipped, &workspace)?);
    let rate_limit = match args.rate_limit {
        Some(n) => RateLimit {
            requests_per_minute: n,
            burst: SERVE_BURST,
            lifted: false,
        },
        None => RateLimit {
            requests_per_minute: LIFTED_PER_MINUTE,
            burst: LIFTED_BURST,
            lifted: true,
        },
    };
    let config = ServeConfig {
        requests_per_minute: rate_limit.requests_per_minute,
        burst: rate_limit.burst,
        concurrent_simulations: args.concurrent_simulations as usize,
        project_root: Some(project.root.clone()),
        ..ServeConfig::default()
    };
    let state = AppState::new(lake.clone(), config)?;
    let hooks = Webhooks::start(&lake, project.clone())
        .await
        .context("starting the webhook receivers (ops.webhook_events)")?;
    let _ = state.webhooks.set(hooks);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a free port on 127.0.0.1")?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    say.line(&format!(
        "  {} open deals ({} HubSpot), key {}, serving on {base}",
        deal_ids.len(),
        hubspot.len(),
        key.record.key_id
    ));
    say.line(&format!("  per-key rate limit: {}", rate_limit.describe()));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;

    // Phase 1: simulations.
    let simulate_url = format!("{base}/api/simulate");
    let warmup = {
        let t = Instant::now();
        let body = load::simulate_body(&deal_ids, 0, args.simulations);
        let answer = load::send(
            client
                .post(&simulate_url)
                .bearer_auth(&key.secret)
                .json(&body),
            Vec::new(),
        )
        .await;
        match answer.status {
            Some(s) if (200..300).contains(&s) => {}
            other => bail!(
                "the first POST /api/simulate (deal {}) did not succeed: {}",
                deal_ids[0],
                other.map_or_else(
                    || answer.error.unwrap_or_default(),
                    |s| format!("status {s}")
                )
            ),
        }
        t.elapsed()
    };
    let simulate = {
        let client = client.clone();
        let url = simulate_url.clone();
        let secret = key.secret.clone();
        let deals = Arc::new(deal_ids.clone());
        let simulations = args.simulations;
        phase("simulate", &args, say, move |n| {
            let request = client
                .post(&url)
                .bearer_auth(&secret)
                .json(&load::simulate_body(&deals, n + 1, simulations));
            load::send(request, Vec::new())
        })
        .await
    };
    let simulate = PhaseReport::new("POST /api/simulate".into(), &simulate);

    // Phase 2: signed HubSpot batches.
    let path = format!("/api/webhooks/{workspace}/hubspot");
    let hook_url = format!("{base}{path}");
    // Distinct from every earlier run's ids on a reused lake (the journal refuses a seen id).
    let first_id = u64::try_from(chrono::Utc::now().timestamp_millis())
        .unwrap_or_default()
        .saturating_mul(1_000_000);
    let next_id = Arc::new(AtomicU64::new(first_id));
    let hooks_recorded = {
        let client = client.clone();
        let url = hook_url.clone();
        let secret = secret.clone();
        let deals = Arc::new(hubspot.clone());
        let seed = args.seed;
        phase("webhooks", &args, say, move |n| {
            let events = load::events_in(n, seed);
            let first = next_id.fetch_add(events, Ordering::Relaxed);
            let body = serde_json::to_vec(&load::hubspot_batch(&deals, n, seed, first, events))
                .expect("a JSON value serializes");
            let ts = chrono::Utc::now().timestamp_millis().to_string();
            let signature = load::hubspot_signature(&secret, &url, &body, &ts);
            let ids = (first..first + events)
                .map(|i| format!("hubspot:{i}"))
                .collect();
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .header("X-HubSpot-Request-Timestamp", ts)
                .header("X-HubSpot-Signature-v3", signature)
                .body(body);
            load::send(request, ids)
        })
        .await
    };
    let webhooks = PhaseReport::new(format!("POST {path}"), &hooks_recorded);

    // Every acknowledged event journaled, and processed or skipped?
    let acknowledged: HashSet<String> = hooks_recorded.acknowledged.iter().cloned().collect();
    let (states, drain) = drain(&lake, &workspace, &acknowledged, args.drain_timeout, say).await?;
    let events = events_report(
        &acknowledged,
        &states,
        &hooks_recorded,
        drain,
        args.drain_timeout,
    );

    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("the server stopped with an error"),
        Ok(Err(e)) => bail!("the server task ended abnormally: {e}"),
        Err(_) => tracing::warn!("the server did not finish its requests within 30 s of the stop"),
    }

    let report = Report {
        lake: lake.url().to_string(),
        workspace: workspace.to_string(),
        open_deals: deal_ids.len(),
        open_hubspot_deals: hubspot.len(),
        concurrency: args.concurrency,
        duration_s: args.duration.as_secs_f64(),
        n_simulations: args.simulations,
        concurrent_simulations: args.concurrent_simulations,
        rate_limit,
        warmup_ms: warmup.as_secs_f64() * 1000.0,
        simulate,
        webhooks,
        events_per_request: load::EVENTS_PER_REQUEST,
        events,
        peak_rss_mb: super::bench::peak_rss_mb(),
    };
    let failures = report.failures();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json(&failures))?
        );
    } else {
        report.print(&failures);
    }
    drop(temp);
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            eprintln!("bench serve: {f}");
        }
        ExitCode::from(1)
    })
}

/// The HubSpot secret: the variable's value, else a random one set in it (the receiver reads it
/// from the environment on each request, as `revlake serve` does).
fn hubspot_secret() -> String {
    if let Ok(s) = std::env::var(SECRET_ENV)
        && !s.trim().is_empty()
    {
        return s;
    }
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let secret = format!("bench-{}", hex::encode(bytes));
    // SAFETY: called first thing in the command, before this process starts any task or
    // thread of its own that reads the environment; the runtime's other workers are idle.
    unsafe { std::env::set_var(SECRET_ENV, &secret) };
    secret
}

/// The project with the workspace's pipeline receiving HubSpot webhooks signed with the
/// secret in [`SECRET_ENV`] (in memory: no file is written).
fn with_hubspot_receiver(mut project: Project, workspace: &WorkspaceId) -> Result<Project> {
    // The workspace's pipeline, one with [webhooks] first (two would be refused at start).
    let chosen = project
        .pipelines
        .iter()
        .filter(|(_, p)| p.file.workspace == workspace.as_str())
        .max_by_key(|(name, p)| (p.file.webhooks != Default::default(), (*name).clone()))
        .map(|(name, _)| name.clone());
    match chosen {
        Some(name) => {
            let p = project
                .pipelines
                .get_mut(&name)
                .expect("the name was just found");
            p.file.webhooks.hubspot_secret_env = Some(SECRET_ENV.into());
            p.file.webhooks.public_url = None;
        }
        None => {
            let name = "bench-serve".to_string();
            let file: PipelineFile = toml::from_str(&format!(
                "description = \"revlake bench serve\"\nworkspace = \"{workspace}\"\n\n[webhooks]\nhubspot_secret_env = \"{SECRET_ENV}\"\n"
            ))
            .context("building the bench's pipeline")?;
            project.pipelines.insert(
                name.clone(),
                Pipeline {
                    path: project.root.join("pipelines").join(format!("{name}.toml")),
                    name,
                    file,
                },
            );
        }
    }
    Ok(project)
}

/// An open deal of staging.deals, as /api/simulate picks them.
#[derive(Debug, serde::Deserialize)]
struct OpenDeal {
    id: String,
    source: String,
    source_id: Option<String>,
}

/// The workspace's open deals (none when staging.deals does not exist yet).
async fn open_deals(lake: &Lake, workspace: &WorkspaceId) -> Result<Vec<OpenDeal>> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: Some(workspace.clone()),
            ..SessionOptions::default()
        },
    )
    .await
    .with_context(|| format!("opening the tables of {}", lake.url()))?;
    let deals: DatasetRef = "staging.deals".parse()?;
    if !session.tables().contains(&deals) {
        return Ok(Vec::new());
    }
    let batches = session
        .query(
            "SELECT CAST(id AS VARCHAR) AS id, source, CAST(source_id AS VARCHAR) AS source_id \
             FROM staging.deals \
             WHERE NOT coalesce(is_closed, false) AND stage IS NOT NULL \
               AND stage NOT IN ('closed_won', 'closed_lost') \
             ORDER BY id",
        )
        .await?
        .collect()
        .await
        .context("reading the open deals of staging.deals")?;
    let rows = revlake::serve::rows::to_json_rows(&batches)?;
    revlake::serve::rows::typed(rows).context("reading the open deals of staging.deals")
}

/// Generates an org into `dir` and runs models, mining and scoring over it, as `revlake demo`
/// does (the jobs runner, the files landed in place of a sync).
async fn build_org(
    project: &Project,
    lake: &Lake,
    workspace: &WorkspaceId,
    args: &ServeBenchArgs,
    dir: &Path,
    say: Say,
) -> Result<()> {
    say.line(&format!(
        "  building the org: {} deals, seed {} (revlake demo's generator and jobs runner)",
        args.deals, args.seed
    ));
    let config = GenerateConfig {
        deals: args.deals,
        seed: args.seed,
        ..GenerateConfig::default()
    };
    let exports = dir.join("exports");
    let out = exports.clone();
    let t = Instant::now();
    let summary = tokio::task::spawn_blocking(move || {
        let bar = progress::bar(config.deals, "generating", "deals");
        let r = generate(&config, &out, &mut |n| bar.set_position(n));
        bar.finish_and_clear();
        r
    })
    .await?
    .context("generating the org")?;
    say.line(&format!(
        "   generated {} export files in {:.1}s",
        summary.files.len(),
        t.elapsed().as_secs_f64()
    ));
    let mut job = Job::parse(
        "bench-serve",
        BUILD_JOB,
        &project.root.join("jobs/bench-serve.toml"),
    )?;
    job.file.stages.land = Some(LandStage {
        dir: exports.display().to_string(),
    });
    job.retries.attempts = 1;
    let spinner = progress::spinner(&format!("building {workspace}"));
    let outcome = run_leased(
        project,
        lake,
        &job,
        RunRequest::manual(workspace.clone(), holder_id()),
        Duration::from_secs(60),
        None,
        &mut |s| spinner.suspend(|| say.line(&super::demo::stage_line(s))),
    )
    .await?;
    spinner.finish_and_clear();
    let finished = match outcome {
        LeasedRun::Ran(f) => f,
        LeasedRun::Refused { holder, expires_at } => bail!(
            "building workspace {workspace}: the bench-serve job is running elsewhere ({holder}, lease until {}): wait for it or use another --workspace",
            expires_at.to_rfc3339()
        ),
    };
    for needed in ["land", "models", "mining", "scoring"] {
        let stage = finished.run.stages.iter().find(|s| s.stage == needed);
        if stage.is_none_or(|s| s.status != RunStatus::Succeeded) {
            bail!(
                "building workspace {workspace}: the {needed} stage did not succeed ({})",
                stage
                    .map(|s| s.error.clone().unwrap_or_else(|| s.status.to_string()))
                    .unwrap_or_else(|| "it did not run".into())
            );
        }
    }
    Ok(())
}

/// What the org needs: staging (simulate's open deals), the mined chain (its model) and the
/// scores (what an applied webhook event refreshes).
const BUILD_JOB: &str = "[stages.models]\n[stages.mining]\n[stages.scoring]\n";

/// Runs one phase with a progress line (a spinner on a terminal, a log line every 5 s
/// otherwise).
async fn phase<F, Fut>(name: &str, args: &ServeBenchArgs, say: Say, request: F) -> load::Recorded
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = load::Answer> + Send + 'static,
{
    say.line(&format!(
        "  {name}: {} clients for {}",
        args.concurrency,
        humantime(args.duration)
    ));
    let spinner = progress::spinner(name);
    let total = args.duration.as_secs_f64();
    let last_log = std::sync::Mutex::new(Instant::now());
    let recorded = run_phase(
        args.concurrency,
        args.duration,
        request,
        |elapsed, answers| {
            spinner.set_message(format!(
                "{name}: {:.0}/{total:.0}s, {answers} answers",
                elapsed.as_secs_f64().min(total)
            ));
            let mut last = last_log.lock().unwrap_or_else(|p| p.into_inner());
            if spinner.is_hidden() && last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                tracing::info!(
                    phase = name,
                    elapsed_s = elapsed.as_secs(),
                    answers,
                    "bench serve progress"
                );
            }
        },
    )
    .await;
    spinner.finish_and_clear();
    recorded
}

/// Waits until every acknowledged event found in the journal is in a final state (or the
/// timeout), and returns their current states and the time waited.
async fn drain(
    lake: &Lake,
    workspace: &WorkspaceId,
    acknowledged: &HashSet<String>,
    timeout: Duration,
    say: Say,
) -> Result<(HashMap<String, EventRecord>, Duration)> {
    let started = Instant::now();
    let bar = progress::bar(acknowledged.len() as u64, "processing", "events");
    let mut last_log = Instant::now();
    loop {
        let states: HashMap<String, EventRecord> = current_states(
            read_journal(lake)
                .await
                .context("reading ops.webhook_events")?,
        )
        .into_iter()
        .filter(|r| &r.workspace == workspace && acknowledged.contains(&r.event_id))
        .map(|r| (r.event_id.clone(), r))
        .collect();
        let done = states.values().filter(|r| r.status.is_final()).count();
        bar.set_position(done as u64);
        // An acknowledged event absent from the journal never appears later (the 2xx follows
        // the commit): it is lost, not pending.
        if done == states.len() || started.elapsed() >= timeout {
            bar.finish_and_clear();
            let waited = started.elapsed();
            say.line(&format!(
                "  queue: {done} of {} acknowledged events in a final state after {:.1}s",
                acknowledged.len(),
                waited.as_secs_f64()
            ));
            return Ok((states, waited));
        }
        if bar.is_hidden() && last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            tracing::info!(
                final_state = done,
                acknowledged = acknowledged.len(),
                "bench serve: waiting for the webhook queue"
            );
        }
        // Each look reads the whole journal: not too often, it competes with the processor.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn events_report(
    acknowledged: &HashSet<String>,
    states: &HashMap<String, EventRecord>,
    recorded: &load::Recorded,
    drain: Duration,
    drain_timeout: Duration,
) -> EventsReport {
    let count = |s: Status| states.values().filter(|r| r.status == s).count() as u64;
    let mut skipped_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for r in states.values().filter(|r| r.status == Status::Skipped) {
        *skipped_reasons
            .entry(r.last_error.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    let failed: Vec<String> = states
        .values()
        .filter(|r| r.status == Status::Failed)
        .take(3)
        .map(|r| {
            format!(
                "{}: {}",
                r.event_id,
                r.last_error.as_deref().unwrap_or("no error recorded")
            )
        })
        .collect();
    let processing = latency(
        states
            .values()
            .filter(|r| matches!(r.status, Status::Processed | Status::Skipped))
            .filter_map(|r| r.latency_ms)
            .map(|ms| u64::try_from(ms).unwrap_or(0).saturating_mul(1000))
            .collect(),
    );
    EventsReport {
        sent: recorded.events,
        acknowledged: acknowledged.len() as u64,
        unconfirmed: recorded.unconfirmed.len() as u64,
        journaled: states.len() as u64,
        processed: count(Status::Processed),
        skipped: count(Status::Skipped),
        failed: count(Status::Failed),
        pending: states.values().filter(|r| !r.status.is_final()).count() as u64,
        lost: acknowledged.len().saturating_sub(states.len()) as u64,
        skipped_reasons,
        failed_examples: failed,
        processing_latency: processing,
        drain_s: drain.as_secs_f64(),
        drain_timeout_s: drain_timeout.as_secs_f64(),
    }
}

/// `30s`, `2m`, `1m30s`.
fn humantime(d: Duration) -> String {
    revlake::jobs::schedule::format_duration(d)
}
