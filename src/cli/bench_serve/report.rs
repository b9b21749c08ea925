//! The results of `revlake bench serve`: a table per phase, the webhook events' fate, and the
//! same as one JSON object.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::load::{Latency, PhaseReport};

/// The per-key rate limit the server ran with.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimit {
    pub requests_per_minute: u32,
    pub burst: u32,
    /// Not given: set so high it never answers 429 here.
    pub lifted: bool,
}

impl RateLimit {
    pub fn describe(&self) -> String {
        if self.lifted {
            format!(
                "lifted ({} per minute, burst {}; --rate-limit 600 measures with serve's default)",
                self.requests_per_minute, self.burst
            )
        } else {
            format!(
                "{} per minute, burst {} (--rate-limit)",
                self.requests_per_minute, self.burst
            )
        }
    }
}

/// What became of the webhook events, from `ops.webhook_events`.
#[derive(Debug, Clone, Serialize)]
pub struct EventsReport {
    /// Events in every request sent.
    pub sent: u64,
    /// Events in 2xx answers' `accepted`.
    pub acknowledged: u64,
    /// Events of 2xx answers missing from their `accepted` (answered as duplicates).
    pub unconfirmed: u64,
    /// Acknowledged events found in the journal.
    pub journaled: u64,
    pub processed: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Journaled but not final when the wait ended.
    pub pending: u64,
    /// Acknowledged but not in the journal.
    pub lost: u64,
    pub skipped_reasons: BTreeMap<String, u64>,
    pub failed_examples: Vec<String>,
    /// Receipt → processed (`latency_ms` of processed and skipped events).
    pub processing_latency: Option<Latency>,
    pub drain_s: f64,
    pub drain_timeout_s: f64,
}

/// Everything the bench measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lake: String,
    pub workspace: String,
    pub open_deals: usize,
    pub open_hubspot_deals: usize,
    pub concurrency: u32,
    pub duration_s: f64,
    pub n_simulations: u32,
    pub concurrent_simulations: u32,
    pub rate_limit: RateLimit,
    /// The first simulate request (loads the workspace's model and deals), not in the phase.
    pub warmup_ms: f64,
    pub simulate: PhaseReport,
    pub webhooks: PhaseReport,
    pub events_per_request: (u64, u64),
    pub events: EventsReport,
    pub peak_rss_mb: Option<f64>,
}

impl Report {
    /// Why the run fails: 5xx or unanswered requests, a phase without a 2xx, and acknowledged
    /// events lost, failed, unprocessed or not confirmed.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in [&self.simulate, &self.webhooks] {
            if p.server_errors > 0 {
                out.push(format!(
                    "{}: {} answers were 5xx",
                    p.endpoint, p.server_errors
                ));
            }
            if p.no_answer > 0 {
                out.push(format!(
                    "{}: {} requests got no answer ({})",
                    p.endpoint,
                    p.no_answer,
                    p.examples.get("no answer").map_or("", String::as_str)
                ));
            }
            if p.ok == 0 {
                out.push(format!("{}: no 2xx answer", p.endpoint));
            }
        }
        let e = &self.events;
        if e.lost > 0 {
            out.push(format!(
                "{} acknowledged events are not in ops.webhook_events (lost)",
                e.lost
            ));
        }
        if e.failed > 0 {
            out.push(format!(
                "{} acknowledged events failed: {}",
                e.failed,
                e.failed_examples.join("; ")
            ));
        }
        if e.pending > 0 {
            out.push(format!(
                "{} acknowledged events were still not processed after {:.0}s (--drain-timeout)",
                e.pending, e.drain_timeout_s
            ));
        }
        if e.unconfirmed > 0 {
            out.push(format!(
                "{} new events of 2xx answers were not among their `accepted`",
                e.unconfirmed
            ));
        }
        out
    }

    /// What a reader must know to read the figures: a rate limit that capped a phase.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in [&self.simulate, &self.webhooks] {
            if let Some(n) = p.non_2xx.get(&429) {
                out.push(format!(
                    "{} answers of {} were 429: the rate limit capped the phase{}",
                    n,
                    p.endpoint,
                    if self.rate_limit.lifted {
                        String::new()
                    } else {
                        format!(
                            " (per key: {}); run without --rate-limit to lift it",
                            self.rate_limit.describe()
                        )
                    }
                ));
            }
        }
        out
    }

    pub fn to_json(&self, failures: &[String]) -> Value {
        let mut v = serde_json::to_value(self).expect("the report serializes");
        v["notes"] = json!(self.notes());
        v["ok"] = json!(failures.is_empty());
        v["failures"] = json!(failures);
        v
    }

    pub fn print(&self, failures: &[String]) {
        println!();
        println!(
            "{} clients, {} per phase; simulate: n_simulations {}, {} at once on the server; first request (not counted) {:.0} ms",
            self.concurrency,
            super::humantime(std::time::Duration::from_secs_f64(self.duration_s)),
            self.n_simulations,
            self.concurrent_simulations,
            self.warmup_ms
        );
        println!(
            "{:<38} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  non-2xx",
            "endpoint", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "2xx/s"
        );
        for p in [&self.simulate, &self.webhooks] {
            let ms = |f: fn(&Latency) -> f64| {
                p.latency
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |l| format!("{:.1}", f(l)))
            };
            let mut other: Vec<String> = p
                .non_2xx
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            if p.no_answer > 0 {
                other.push(format!("no answer: {}", p.no_answer));
            }
            println!(
                "{:<38} {:>8} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8.1}  {}",
                p.endpoint,
                p.requests,
                p.requests_per_s,
                ms(|l| l.p50_ms),
                ms(|l| l.p90_ms),
                ms(|l| l.p99_ms),
                ms(|l| l.max_ms),
                p.ok_per_s,
                if other.is_empty() {
                    "none".to_string()
                } else {
                    other.join(", ")
                }
            );
        }
        println!("(latency of the 2xx answers; req/s counts every answer)");
        for p in [&self.simulate, &self.webhooks] {
            for (status, example) in &p.examples {
                println!("  {} {status}, e.g.: {example}", p.endpoint);
            }
        }
        for note in self.notes() {
            println!("note: {note}");
        }
        let e = &self.events;
        println!();
        println!(
            "webhook events: {} sent in {} requests ({:.1} per request, {}–{} each), {:.0} acknowledged/s",
            e.sent,
            self.webhooks.requests,
            e.sent as f64 / self.webhooks.requests.max(1) as f64,
            self.events_per_request.0,
            self.events_per_request.1,
            e.acknowledged as f64 / self.webhooks.seconds
        );
        println!(
            "  acknowledged {}, journaled {}, processed {}, skipped {}, failed {}, pending {}, lost {}",
            e.acknowledged, e.journaled, e.processed, e.skipped, e.failed, e.pending, e.lost
        );
        match &e.processing_latency {
            Some(l) => println!(
                "  receipt → processed (ops.webhook_events.latency_ms, {} events): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; queue drained {:.1}s after the phase",
                l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, e.drain_s
            ),
            None => println!("  receipt → processed: no event reached a final state"),
        }
        for (reason, n) in &e.skipped_reasons {
            println!("  skipped ×{n}: {reason}");
        }
        if let Some(rss) = self.peak_rss_mb {
            println!("peak RSS of this process (server and clients): {rss:.0} MB");
        }
        if failures.is_empty() {
            println!("result: ok (no 5xx, nothing lost)");
        } else {
            println!("result: FAILED");
        }
    }
}
