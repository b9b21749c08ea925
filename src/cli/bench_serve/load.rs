//! The load of `revlake bench serve`: clients that post for a fixed time and record every
//! answer, the requests they send (simulations, signed HubSpot v3 batches), and the latency
//! statistics (nearest-rank percentiles of a sorted `Vec`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{KeyInit, Mac};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};

/// How one request ended.
#[derive(Debug, Default)]
pub struct Answer {
    /// The HTTP status; `None` when no answer came (connection refused, reset, timeout).
    pub status: Option<u16>,
    /// Why no answer came, or the body of an answer other than 2xx.
    pub error: Option<String>,
    /// Webhook event ids the server acknowledged (`accepted` of a 2xx answer).
    pub acknowledged: Vec<String>,
    /// Webhook event ids sent in a request answered 2xx but not among its `accepted`.
    pub unconfirmed: Vec<String>,
    /// Webhook events the request carried.
    pub events: u64,
}

/// One request: its latency and status.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub latency: Duration,
    pub status: Option<u16>,
}

/// What a phase's clients recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    pub samples: Vec<Sample>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    pub acknowledged: Vec<String>,
    pub unconfirmed: Vec<String>,
    pub events: u64,
    /// The first answer of each status other than 2xx (`no answer`: why none came).
    pub examples: BTreeMap<String, String>,
}

impl Recorded {
    fn example(&mut self, status: Option<u16>, text: String) {
        let key = status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
        self.examples.entry(key).or_insert(text);
    }
}

/// Runs `concurrency` clients, each sending `request(n)` (n counts the phase's requests) one
/// after the other until `duration` has passed; requests in flight then are waited for.
/// `tick` is called about every 250 ms with the elapsed time and the answers so far.
pub async fn run_phase<F, Fut>(
    concurrency: u32,
    duration: Duration,
    request: F,
    tick: impl Fn(Duration, u64),
) -> Recorded
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let request = Arc::new(request);
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let request = request.clone();
        let sent = sent.clone();
        let answered = answered.clone();
        clients.spawn(async move {
            let mut out = Recorded::default();
            while Instant::now() < deadline {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let answer = request(n).await;
                out.samples.push(Sample {
                    latency: t.elapsed(),
                    status: answer.status,
                });
                answered.fetch_add(1, Ordering::Relaxed);
                out.acknowledged.extend(answer.acknowledged);
                out.unconfirmed.extend(answer.unconfirmed);
                out.events += answer.events;
                if let Some(e) = answer.error {
                    out.example(answer.status, e);
                }
            }
            out
        });
    }
    let mut all = Recorded::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            joined = clients.join_next() => match joined {
                Some(Ok(r)) => {
                    all.samples.extend(r.samples);
                    all.acknowledged.extend(r.acknowledged);
                    all.unconfirmed.extend(r.unconfirmed);
                    all.events += r.events;
                    for (k, v) in r.examples {
                        all.examples.entry(k).or_insert(v);
                    }
                }
                Some(Err(e)) => all.example(None, format!("a client task ended abnormally: {e}")),
                None => break,
            },
            _ = ticker.tick() => tick(started.elapsed(), answered.load(Ordering::Relaxed)),
        }
    }
    all.elapsed = started.elapsed();
    all
}

/// Nearest-rank percentiles of latencies, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The percentiles of `micros` (any order); `None` when empty.
pub fn latency(mut micros: Vec<u64>) -> Option<Latency> {
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    let at = |p: f64| {
        // Nearest rank: the smallest value with at least p of the values at or below it.
        let rank = (p * micros.len() as f64).ceil() as usize;
        micros[rank.clamp(1, micros.len()) - 1] as f64 / 1000.0
    };
    Some(Latency {
        count: micros.len(),
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

/// A phase's figures: every request counted, latency over the 2xx answers.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub endpoint: String,
    pub requests: u64,
    /// Answers 2xx.
    pub ok: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub ok_per_s: f64,
    /// Latency of the 2xx answers (none: no 2xx).
    pub latency: Option<Latency>,
    /// Answers other than 2xx, by status.
    pub non_2xx: BTreeMap<u16, u64>,
    /// Answers 5xx (a subset of `non_2xx`).
    pub server_errors: u64,
    /// Requests that got no answer (refused, reset, timed out).
    pub no_answer: u64,
    /// The first answer of each status other than 2xx, and why requests got no answer.
    pub examples: BTreeMap<String, String>,
}

impl PhaseReport {
    pub fn new(endpoint: String, r: &Recorded) -> Self {
        let seconds = r.elapsed.as_secs_f64().max(1e-9);
        let mut non_2xx = BTreeMap::new();
        let mut ok_micros = Vec::new();
        let mut no_answer = 0;
        for s in &r.samples {
            match s.status {
                Some(code) if (200..300).contains(&code) => {
                    ok_micros.push(u64::try_from(s.latency.as_micros()).unwrap_or(u64::MAX));
                }
                Some(code) => *non_2xx.entry(code).or_insert(0) += 1,
                None => no_answer += 1,
            }
        }
        let requests = r.samples.len() as u64;
        let ok = ok_micros.len() as u64;
        Self {
            endpoint,
            requests,
            ok,
            seconds,
            requests_per_s: requests as f64 / seconds,
            ok_per_s: ok as f64 / seconds,
            latency: latency(ok_micros),
            server_errors: non_2xx
                .iter()
                .filter(|(code, _)| **code >= 500)
                .map(|(_, n)| n)
                .sum(),
            non_2xx,
            no_answer,
            examples: r.examples.clone(),
        }
    }
}

/// The what-ifs the simulate clients cycle through: those that apply to every open deal
/// (add_champion, remove_blocker and increase_touchpoints depend on the deal's contacts and
/// activity, and answer 400 `does not apply` for some).
const SCENARIOS: [&str; 4] = [
    r#"{"type": "accelerate_stage", "params": {"days": 7}}"#,
    r#"{"type": "change_amount", "params": {"ratio": 1.2}}"#,
    r#"{"type": "accelerate_stage", "params": {"days": 14}}"#,
    r#"{"type": "change_amount", "params": {"ratio": 0.8}}"#,
];

/// The body of simulate request `n`: deals and scenarios in turn.
pub fn simulate_body(deals: &[String], n: u64, simulations: u32) -> Value {
    let deal = &deals[(n % deals.len() as u64) as usize];
    let scenario: Value = serde_json::from_str(SCENARIOS[(n % SCENARIOS.len() as u64) as usize])
        .expect("the scenarios are JSON");
    json!({
        "deal_id": deal,
        "scenario": scenario,
        "n_simulations": simulations,
        "seed": n,
    })
}

/// Open HubSpot deal stages (`seeds/stage_mappings.csv`): a change keeps the deal open.
const OPEN_STAGES: [&str; 5] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
];

/// Fewest and most events of a webhook request (HubSpot batches up to 100; 1–10 is typical).
pub const EVENTS_PER_REQUEST: (u64, u64) = (1, 10);

/// A HubSpot v3 batch of deal.propertyChange events: request `n` carries 1–10 events (ids
/// `first_id`, `first_id + 1`, ...) on random open deals, each a dealstage or amount change.
pub fn hubspot_batch(deals: &[String], n: u64, seed: u64, first_id: u64, events: u64) -> Value {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let now = chrono::Utc::now().timestamp_millis();
    let items: Vec<Value> = (0..events)
        .map(|i| {
            let deal = &deals[rng.random_range(0..deals.len())];
            let object_id = deal
                .parse::<i64>()
                .map_or_else(|_| json!(deal), |id| json!(id));
            let (property, value) = if rng.random_range(0..3u8) == 0 {
                ("amount", format!("{}", rng.random_range(1_000..250_000u32)))
            } else {
                (
                    "dealstage",
                    OPEN_STAGES[rng.random_range(0..OPEN_STAGES.len())].to_string(),
                )
            };
            json!({
                "eventId": first_id + i,
                "subscriptionId": 1,
                "portalId": 1,
                "appId": 1,
                "occurredAt": now,
                "subscriptionType": "deal.propertyChange",
                "attemptNumber": 0,
                "objectId": object_id,
                "propertyName": property,
                "propertyValue": value,
                "changeSource": "CRM_UI",
            })
        })
        .collect();
    Value::Array(items)
}

/// How many events request `n` carries, from [`EVENTS_PER_REQUEST`].
pub fn events_in(n: u64, seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(n));
    rng.random_range(EVENTS_PER_REQUEST.0..=EVENTS_PER_REQUEST.1)
}

/// The `X-HubSpot-Signature-v3` of a POST of `body` to `uri` at `timestamp_ms`: base64 of
/// HMAC-SHA256(secret, "POST" + uri + body + timestamp).
pub fn hubspot_signature(secret: &str, uri: &str, body: &[u8], timestamp_ms: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    for part in [
        b"POST".as_slice(),
        uri.as_bytes(),
        body,
        timestamp_ms.as_bytes(),
    ] {
        mac.update(part);
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Sends one request and reads its answer into an [`Answer`] (`sent_ids`: the webhook event
/// ids it carries, checked against the answer's `accepted`).
pub async fn send(request: reqwest::RequestBuilder, sent_ids: Vec<String>) -> Answer {
    let events = sent_ids.len() as u64;
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                error: Some(error_chain(&e)),
                events,
                ..Answer::default()
            };
        }
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Answer {
                error: Some(format!("reading the answer: {}", error_chain(&e))),
                events,
                ..Answer::default()
            };
        }
    };
    let mut answer = Answer {
        status: Some(status.as_u16()),
        events,
        ..Answer::default()
    };
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        answer.error = Some(text.chars().take(300).collect());
    }
    if status.is_success() && !sent_ids.is_empty() {
        let accepted: Vec<String> = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("accepted").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
            })
            .unwrap_or_default();
        for id in sent_ids {
            if accepted.contains(&id) {
                answer.acknowledged.push(id);
            } else {
                answer.unconfirmed.push(id);
            }
        }
    }
    answer
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_ranks() {
        let l = latency((1..=100).map(|ms| ms * 1000).collect()).unwrap();
        assert_eq!(l.count, 100);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p90_ms, 90.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        let one = latency(vec![2500]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms, one.max_ms), (2.5, 2.5, 2.5));
        assert!(latency(Vec::new()).is_none());
    }

    #[test]
    fn a_phase_counts_every_request_and_times_only_the_2xx() {
        let ms = Duration::from_millis;
        let recorded = Recorded {
            samples: vec![
                Sample {
                    latency: ms(10),
                    status: Some(200),
                },
                Sample {
                    latency: ms(30),
                    status: Some(200),
                },
                Sample {
                    latency: ms(1),
                    status: Some(429),
                },
                Sample {
                    latency: ms(5),
                    status: Some(503),
                },
                Sample {
                    latency: ms(60_000),
                    status: None,
                },
            ],
            elapsed: Duration::from_secs(2),
            ..Recorded::default()
        };
        let r = PhaseReport::new("POST /x".into(), &recorded);
        assert_eq!(
            (r.requests, r.ok, r.no_answer, r.server_errors),
            (5, 2, 1, 1)
        );
        assert_eq!(r.non_2xx, BTreeMap::from([(429, 1), (503, 1)]));
        assert_eq!(r.requests_per_s, 2.5);
        let l = r.latency.unwrap();
        assert_eq!((l.p50_ms, l.max_ms), (10.0, 30.0));
    }

    #[test]
    fn the_signature_is_hubspots_v3() {
        // HMAC-SHA256 over method + URI + body + timestamp, base64 (as
        // scripts/webhook_send_hubspot.py and the server's verify::hubspot_v3 compute it).
        let sig = hubspot_signature("s3cret", "http://127.0.0.1:1/x", b"[]", "1700000000000");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"POSThttp://127.0.0.1:1/x[]1700000000000");
        assert_eq!(
            sig,
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert!(
            revlake::serve::webhooks::verify::hubspot_v3(
                "s3cret",
                "POST",
                "http://127.0.0.1:1/x",
                b"[]",
                Some("1700000000000"),
                Some(&sig),
                1_700_000_000_000,
                300,
            )
            .is_ok()
        );
    }

    #[test]
    fn batches_hold_distinct_ids_of_open_stage_or_amount_changes() {
        let deals = vec!["101".to_string(), "202".to_string()];
        let n = events_in(7, 42);
        assert!((1..=10).contains(&n));
        let batch = hubspot_batch(&deals, 7, 42, 5_000, n);
        let items = batch.as_array().unwrap();
        assert_eq!(items.len() as u64, n);
        for (i, e) in items.iter().enumerate() {
            assert_eq!(e["eventId"], json!(5_000 + i as u64));
            assert_eq!(e["subscriptionType"], "deal.propertyChange");
            assert!(e["objectId"] == json!(101) || e["objectId"] == json!(202));
            match e["propertyName"].as_str().unwrap() {
                "dealstage" => {
                    assert!(OPEN_STAGES.contains(&e["propertyValue"].as_str().unwrap()))
                }
                "amount" => assert!(e["propertyValue"].as_str().unwrap().parse::<u32>().is_ok()),
                other => panic!("unexpected property {other}"),
            }
        }
    }
}
