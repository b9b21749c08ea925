//! The webhook receivers' durable queue: `ops.webhook_events`, an append-only journal with one
//! writer that group-commits, and the processor that applies events in order.
//!
//! ```text
//! request ─verify─▶ Queue::enqueue ─▶ writer task ─(one Delta commit for every request waiting)─▶ 2xx
//!                                                  └▶ processor: in seq order, per workspace batch
//!                                                        apply ─ok──▶ `processed` / `skipped` row
//!                                                              └err─▶ `retrying` row, backoff; `failed` after the last
//! start-up: read the journal ─▶ every event whose state is not final goes back to the processor
//! ```
//!
//! An event is answered 2xx only after the commit that holds it, so a crash (even `kill -9`)
//! loses no acknowledged event: the next start resumes it. Applying is idempotent (raw rows are
//! merged by key), so an event applied but not yet marked when the process died is applied
//! again and marked once. Events of one deal are applied in receipt order: an event waits while
//! an earlier one of its deal waits for a retry.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::lake::{DatasetRef, Lake, LakeError, WorkspaceId, WriteMode};
use crate::project::DatasetSchema;

/// What can go wrong with the journal.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A row of `ops.webhook_events` does not read back (the table was edited by hand).
    #[error("ops.webhook_events: {reason}")]
    BadTable { reason: String },
    /// The commit holding a request's events failed (retryable: the sender retries).
    #[error("committing webhook events to ops.webhook_events: {reason}")]
    Write { reason: String },
    /// The processor's thread or runtime could not be started.
    #[error("starting the webhook processor: {reason}")]
    Processor { reason: String },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// The queue's result type.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// The journal's dataset.
pub const EVENTS_DATASET: &str = "ops.webhook_events";
const EVENTS_SCHEMA: &str = include_str!("../../schemas/ops.webhook_events.toml");

/// Where an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Committed, not applied yet.
    Queued,
    /// An attempt failed; another will follow.
    Retrying,
    /// Applied: raw landed, deal rescored, alerts raised.
    Processed,
    /// Verified and kept, but nothing to apply in real time (the reason is in `last_error`).
    Skipped,
    /// Every attempt failed.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Retrying => "retrying",
            Status::Processed => "processed",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Status::Queued,
            Status::Retrying,
            Status::Processed,
            Status::Skipped,
            Status::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Whether nothing more happens to the event.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Processed | Status::Skipped | Status::Failed)
    }

    /// Which of two rows with the same attempts is the later.
    fn rank(self) -> u8 {
        match self {
            Status::Queued => 0,
            Status::Retrying => 1,
            _ => 2,
        }
    }
}

/// One row of the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub workspace: WorkspaceId,
    pub event_id: String,
    pub source: String,
    pub seq: i64,
    pub received_at: DateTime<Utc>,
    pub deal_key: Option<String>,
    pub payload: String,
    pub status: Status,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<i64>,
}

impl EventRecord {
    /// The record of the same event in a new state.
    fn with_status(&self, status: Status, attempts: i64, error: Option<String>) -> Self {
        let now = Utc::now();
        let done = status == Status::Processed || status == Status::Skipped;
        EventRecord {
            status,
            attempts,
            last_error: error,
            processed_at: done.then_some(now),
            latency_ms: done.then(|| (now - self.received_at).num_milliseconds()),
            ..self.clone()
        }
    }
}

/// An event to enqueue.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub deal_key: Option<String>,
    pub payload: String,
}

/// What [`Queue::enqueue`] did with a request's events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enqueued {
    /// Committed now.
    pub accepted: Vec<String>,
    /// Seen before (or twice in the request): not queued again.
    pub duplicates: Vec<String>,
}

/// How one event of a batch came out of [`Apply::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Processed,
    Skipped(String),
}

/// Applies a workspace's events (in `seq` order); an `Err` fails the whole batch, which is
/// retried.
pub trait Apply: Send + Sync + 'static {
    fn apply<'a>(
        &'a self,
        workspace: &'a WorkspaceId,
        events: &'a [EventRecord],
    ) -> BoxFuture<'a, std::result::Result<Vec<Outcome>, String>>;
}

/// Retry settings of the processor.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts before an event is `failed`.
    pub max_attempts: i64,
    /// The delay after the first failure; doubled after each next one.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Most events applied in one batch.
    pub batch: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            batch: 500,
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.first_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max_backoff)
    }
}

fn dataset() -> DatasetRef {
    EVENTS_DATASET
        .parse()
        .expect("ops.webhook_events is a valid dataset name")
}

fn schema() -> Result<DatasetSchema> {
    DatasetSchema::parse(
        dataset(),
        EVENTS_SCHEMA,
        std::path::Path::new("schemas/ops.webhook_events.toml"),
    )
    .map_err(|e| QueueError::BadTable {
        reason: format!("the built-in schema does not parse: {e}"),
    })
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn to_batch(schema: &DatasetSchema, rows: &[&EventRecord]) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&EventRecord) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|r| f(r)).collect::<Vec<Option<String>>>(),
        ))
    };
    let ints = |f: &dyn Fn(&EventRecord) -> Option<i64>| -> ArrayRef {
        Arc::new(Int64Array::from(
            rows.iter().map(|r| f(r)).collect::<Vec<Option<i64>>>(),
        ))
    };
    let times = |f: &dyn Fn(&EventRecord) -> Option<i64>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| f(r)).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let now = micros(Utc::now());
    let columns = vec![
        strings(&|r| Some(r.workspace.to_string())),
        strings(&|r| Some(r.event_id.clone())),
        strings(&|r| Some(r.source.clone())),
        ints(&|r| Some(r.seq)),
        times(&|r| Some(micros(r.received_at))),
        strings(&|r| r.deal_key.clone()),
        strings(&|r| Some(r.payload.clone())),
        strings(&|r| Some(r.status.as_str().to_string())),
        ints(&|r| Some(r.attempts)),
        strings(&|r| r.last_error.clone()),
        times(&|r| r.processed_at.map(micros)),
        ints(&|r| r.latency_ms),
        times(&|_| Some(now)),
    ];
    RecordBatch::try_new(schema.arrow_schema(), columns).map_err(|e| QueueError::BadTable {
        reason: format!("building a batch: {e}"),
    })
}

/// Every row of the journal, in the order written.
pub async fn read_journal(lake: &Lake) -> Result<Vec<EventRecord>> {
    let Some(table) = lake.try_load(&dataset()).await? else {
        return Ok(Vec::new());
    };
    let bad = |e: &dyn std::fmt::Display| QueueError::BadTable {
        reason: e.to_string(),
    };
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|source| lake.delta_err("register", &dataset(), source))?;
    let provider = table.table_provider().await.map_err(|e| bad(&e))?;
    ctx.register_table("events", provider)
        .map_err(|e| bad(&e))?;
    let batches = ctx
        .sql(
            "SELECT workspace_id, event_id, source, seq, \
             CAST(received_at AS BIGINT) AS received_at, deal_key, payload, status, attempts, \
             last_error, CAST(processed_at AS BIGINT) AS processed_at, latency_ms \
             FROM events ORDER BY recorded_at, seq",
        )
        .await
        .map_err(|e| bad(&e))?
        .collect()
        .await
        .map_err(|e| bad(&e))?;
    let mut out = Vec::new();
    for b in &batches {
        let text = |i: usize| -> Result<StringArray> {
            let a = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)
                .map_err(|e| bad(&e))?;
            Ok(a.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .expect("cast to Utf8 gives a StringArray"))
        };
        let int = |i: usize| -> Result<Int64Array> {
            let a = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Int64)
                .map_err(|e| bad(&e))?;
            Ok(a.as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .expect("cast to Int64 gives an Int64Array"))
        };
        let (ws, id, source, seq, received, deal, payload, status, attempts, error, done, lat) = (
            text(0)?,
            text(1)?,
            text(2)?,
            int(3)?,
            int(4)?,
            text(5)?,
            text(6)?,
            text(7)?,
            int(8)?,
            text(9)?,
            int(10)?,
            int(11)?,
        );
        let opt_text = |a: &StringArray, r: usize| (!a.is_null(r)).then(|| a.value(r).to_string());
        let opt_int = |a: &Int64Array, r: usize| (!a.is_null(r)).then(|| a.value(r));
        for r in 0..b.num_rows() {
            let workspace = WorkspaceId::new(ws.value(r)).map_err(|e| bad(&e))?;
            let status = Status::parse(status.value(r)).ok_or_else(|| QueueError::BadTable {
                reason: format!(
                    "event {}: unknown status `{}`",
                    id.value(r),
                    status.value(r)
                ),
            })?;
            let time = |us: i64| DateTime::from_timestamp_micros(us).unwrap_or_default();
            out.push(EventRecord {
                workspace,
                event_id: id.value(r).to_string(),
                source: source.value(r).to_string(),
                seq: seq.value(r),
                received_at: time(received.value(r)),
                deal_key: opt_text(&deal, r),
                payload: payload.value(r).to_string(),
                status,
                attempts: attempts.value(r),
                last_error: opt_text(&error, r),
                processed_at: opt_int(&done, r).map(time),
                latency_ms: opt_int(&lat, r),
            });
        }
    }
    Ok(out)
}

/// Each event's current state: its row with the most attempts, a final one winning a tie.
pub fn current_states(rows: Vec<EventRecord>) -> Vec<EventRecord> {
    let mut by_event: HashMap<(WorkspaceId, String), EventRecord> = HashMap::new();
    for r in rows {
        let key = (r.workspace.clone(), r.event_id.clone());
        match by_event.get(&key) {
            Some(prev) if (prev.attempts, prev.status.rank()) >= (r.attempts, r.status.rank()) => {}
            _ => {
                by_event.insert(key, r);
            }
        }
    }
    let mut out: Vec<EventRecord> = by_event.into_values().collect();
    out.sort_by_key(|r| r.seq);
    out
}

struct Append {
    rows: Vec<EventRecord>,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// The single writer of the journal: appends sent while a commit runs go into the next one.
async fn writer(
    lake: Lake,
    schema: DatasetSchema,
    mut rx: mpsc::Receiver<Append>,
    linger: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        if !linger.is_zero() {
            tokio::time::sleep(linger).await;
        }
        while let Ok(next) = rx.try_recv() {
            waiting.push(next);
            if waiting.len() >= 4096 {
                break;
            }
        }
        let rows: Vec<&EventRecord> = waiting.iter().flat_map(|a| a.rows.iter()).collect();
        let started = Instant::now();
        let result = match to_batch(&schema, &rows) {
            Ok(batch) => lake
                .write(dataset())
                .with_schema(Some(&schema))
                .with_mode(WriteMode::Append)
                .with_batches(batch.schema(), vec![batch])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        tracing::debug!(
            rows = rows.len(),
            requests = waiting.len(),
            commit_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "webhook journal commit"
        );
        if let Err(e) = &result {
            tracing::error!(error = %e, rows = rows.len(), "webhook journal commit failed");
        }
        for a in waiting {
            let _ = a.done.send(result.clone());
        }
    }
}

struct Pending {
    record: EventRecord,
    not_before: Option<Instant>,
}

struct Shared {
    /// Every event id ever queued, per workspace and source-prefixed id.
    seen: HashSet<(WorkspaceId, String)>,
    next_seq: i64,
}

/// The queue: the journal's writer, the replay filter and the processor's inbox.
pub struct Queue {
    writer: mpsc::Sender<Append>,
    shared: Mutex<Shared>,
    /// Each request's events in one message, so they reach the processor together (it runs on
    /// threads of its own and would otherwise start on the first before the rest arrive).
    inbox: mpsc::UnboundedSender<Vec<EventRecord>>,
}

impl Queue {
    /// Opens the journal, starts the writer and the processor (which first resumes every event
    /// not in a final state) and returns the queue.
    pub async fn start(
        lake: Lake,
        apply: Arc<dyn Apply>,
        policy: RetryPolicy,
    ) -> Result<Arc<Self>> {
        let schema = schema()?;
        let states = current_states(read_journal(&lake).await?);
        let seen = states
            .iter()
            .map(|r| (r.workspace.clone(), r.event_id.clone()))
            .collect();
        let next_seq = states.iter().map(|r| r.seq + 1).max().unwrap_or(0);
        let resumed: Vec<EventRecord> = states
            .into_iter()
            .filter(|r| !r.status.is_final())
            .collect();
        if !resumed.is_empty() {
            tracing::info!(
                events = resumed.len(),
                "resuming webhook events not yet processed"
            );
        }
        let (writer_tx, writer_rx) = mpsc::channel(8192);
        tokio::spawn(writer(
            lake.clone(),
            schema,
            writer_rx,
            Duration::from_millis(2),
        ));
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Queue {
            writer: writer_tx,
            shared: Mutex::new(Shared { seen, next_seq }),
            inbox,
        });
        let journal = queue.writer.clone();
        spawn_processor(process(resumed, inbox_rx, journal, apply, policy)).map_err(|e| {
            QueueError::Processor {
                reason: e.to_string(),
            }
        })?;
        Ok(queue)
    }

    /// Commits the events not seen before and hands them to the processor; returns once they
    /// are in the lake.
    pub async fn enqueue(
        &self,
        workspace: &WorkspaceId,
        source: &str,
        received_at: DateTime<Utc>,
        events: Vec<NewEvent>,
    ) -> Result<Enqueued> {
        let mut out = Enqueued::default();
        let mut rows = Vec::new();
        {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            for e in events {
                if !shared.seen.insert((workspace.clone(), e.event_id.clone())) {
                    out.duplicates.push(e.event_id);
                    continue;
                }
                let seq = shared.next_seq;
                shared.next_seq += 1;
                out.accepted.push(e.event_id.clone());
                rows.push(EventRecord {
                    workspace: workspace.clone(),
                    event_id: e.event_id,
                    source: source.to_string(),
                    seq,
                    received_at,
                    deal_key: e.deal_key,
                    payload: e.payload,
                    status: Status::Queued,
                    attempts: 0,
                    last_error: None,
                    processed_at: None,
                    latency_ms: None,
                });
            }
        }
        if rows.is_empty() {
            return Ok(out);
        }
        if let Err(reason) = append(&self.writer, rows.clone()).await {
            // Not committed: the sender gets an error and retries; let the retry in.
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            for r in &rows {
                shared
                    .seen
                    .remove(&(r.workspace.clone(), r.event_id.clone()));
            }
            return Err(QueueError::Write { reason });
        }
        if !rows.is_empty() {
            let _ = self.inbox.send(rows);
        }
        Ok(out)
    }
}

async fn append(
    writer: &mpsc::Sender<Append>,
    rows: Vec<EventRecord>,
) -> std::result::Result<(), String> {
    let (done, wait) = oneshot::channel();
    writer
        .send(Append { rows, done })
        .await
        .map_err(|_| "the journal writer stopped".to_string())?;
    wait.await
        .map_err(|_| "the journal writer stopped".to_string())?
}

/// Takes the events that may be applied now: in seq order, not waiting for a retry, and not
/// behind an earlier event of the same deal that is.
fn take_ready(pending: &mut VecDeque<Pending>, max: usize) -> Vec<EventRecord> {
    let now = Instant::now();
    let mut blocked: HashSet<String> = HashSet::new();
    let mut ready = Vec::new();
    let mut keep = VecDeque::new();
    while let Some(p) = pending.pop_front() {
        let deal_blocked = p
            .record
            .deal_key
            .as_ref()
            .is_some_and(|d| blocked.contains(d));
        let waiting = p.not_before.is_some_and(|t| t > now);
        if ready.len() >= max || waiting || deal_blocked {
            if let Some(d) = &p.record.deal_key {
                blocked.insert(d.clone());
            }
            keep.push_back(p);
        } else {
            ready.push(p.record);
        }
    }
    *pending = keep;
    ready
}

/// Worker threads of the processor's own runtime.
const PROCESSOR_THREADS: usize = 2;

/// Runs the processor on a runtime of its own. Applying a batch is CPU work (model runs,
/// simulation, scoring) whose many DataFusion tasks would otherwise queue ahead of the
/// request handlers on the server's workers: webhook acknowledgements and API answers stalled
/// for seconds behind each batch (`revlake bench serve` measured 8–18 s). On its own threads
/// the operating system shares the cores between the two fairly.
fn spawn_processor(
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(PROCESSOR_THREADS)
        .thread_name("revlake-webhooks")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("revlake-webhooks".into())
        .spawn(move || runtime.block_on(work))?;
    Ok(())
}

async fn process(
    resumed: Vec<EventRecord>,
    mut inbox: mpsc::UnboundedReceiver<Vec<EventRecord>>,
    journal: mpsc::Sender<Append>,
    apply: Arc<dyn Apply>,
    policy: RetryPolicy,
) {
    let mut pending: VecDeque<Pending> = resumed
        .into_iter()
        .map(|record| Pending {
            record,
            not_before: None,
        })
        .collect();
    loop {
        while let Ok(rows) = inbox.try_recv() {
            pending.extend(rows.into_iter().map(|record| Pending {
                record,
                not_before: None,
            }));
        }
        let ready = take_ready(&mut pending, policy.batch);
        if ready.is_empty() {
            let next_retry = pending.iter().filter_map(|p| p.not_before).min();
            let got = match next_retry {
                Some(t) => tokio::time::timeout_at(t.into(), inbox.recv()).await.ok(),
                None => Some(inbox.recv().await),
            };
            match got {
                Some(Some(rows)) => pending.extend(rows.into_iter().map(|record| Pending {
                    record,
                    not_before: None,
                })),
                Some(None) if pending.is_empty() => return,
                _ => {}
            }
            continue;
        }
        let mut by_workspace: BTreeMap<WorkspaceId, Vec<EventRecord>> = BTreeMap::new();
        for r in ready {
            by_workspace.entry(r.workspace.clone()).or_default().push(r);
        }
        for (workspace, events) in by_workspace {
            let span =
                tracing::info_span!("webhook_batch", workspace = %workspace, events = events.len());
            let result =
                tracing::Instrument::instrument(apply.apply(&workspace, &events), span).await;
            let mut marks = Vec::new();
            match result {
                Ok(outcomes) if outcomes.len() == events.len() => {
                    for (e, o) in events.iter().zip(outcomes) {
                        let attempts = e.attempts + 1;
                        let row = match o {
                            Outcome::Processed => e.with_status(Status::Processed, attempts, None),
                            Outcome::Skipped(why) => {
                                e.with_status(Status::Skipped, attempts, Some(why))
                            }
                        };
                        tracing::info!(
                            workspace = %workspace,
                            event_id = %row.event_id,
                            source = %row.source,
                            deal = row.deal_key.as_deref().unwrap_or(""),
                            status = row.status.as_str(),
                            attempts,
                            latency_ms = row.latency_ms.unwrap_or(-1),
                            "webhook event applied"
                        );
                        marks.push(row);
                    }
                }
                other => {
                    let error = match other {
                        Err(e) => e,
                        Ok(o) => {
                            format!("internal: {} outcomes for {} events", o.len(), events.len())
                        }
                    };
                    for e in events {
                        let attempts = e.attempts + 1;
                        if attempts >= policy.max_attempts {
                            tracing::error!(workspace = %workspace, event_id = %e.event_id, attempts, error = %error, "webhook event failed: giving up");
                            marks.push(e.with_status(
                                Status::Failed,
                                attempts,
                                Some(error.clone()),
                            ));
                        } else {
                            let delay = policy.backoff(attempts);
                            tracing::warn!(workspace = %workspace, event_id = %e.event_id, attempts, retry_in_ms = delay.as_millis() as u64, error = %error, "webhook event failed: will retry");
                            let row =
                                e.with_status(Status::Retrying, attempts, Some(error.clone()));
                            marks.push(row.clone());
                            pending.push_back(Pending {
                                record: row,
                                not_before: Some(Instant::now() + delay),
                            });
                        }
                    }
                    // Keep seq order (retries go back before later events of their deal).
                    pending.make_contiguous().sort_by_key(|p| p.record.seq);
                }
            }
            if let Err(e) = append(&journal, marks).await {
                // The events stay applied; a restart re-applies them (idempotent) and marks them.
                tracing::error!(error = %e, workspace = %workspace, "recording webhook outcomes failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, seq: i64, deal: &str, status: Status, attempts: i64) -> EventRecord {
        EventRecord {
            workspace: WorkspaceId::new("acme").unwrap(),
            event_id: id.into(),
            source: "generic".into(),
            seq,
            received_at: Utc::now(),
            deal_key: Some(deal.into()),
            payload: "{}".into(),
            status,
            attempts,
            last_error: None,
            processed_at: None,
            latency_ms: None,
        }
    }

    #[test]
    fn the_latest_row_of_an_event_is_its_state() {
        let rows = vec![
            record("a", 0, "d1", Status::Queued, 0),
            record("b", 1, "d1", Status::Queued, 0),
            record("a", 0, "d1", Status::Retrying, 1),
            record("a", 0, "d1", Status::Processed, 2),
            record("b", 1, "d1", Status::Retrying, 1),
        ];
        let states = current_states(rows);
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].status, Status::Processed);
        assert_eq!(states[1].status, Status::Retrying);
    }

    #[test]
    fn an_event_waits_behind_an_earlier_one_of_its_deal() {
        let later = Instant::now() + Duration::from_secs(60);
        let mut pending: VecDeque<Pending> = [
            (record("a", 0, "d1", Status::Retrying, 1), Some(later)),
            (record("b", 1, "d1", Status::Queued, 0), None),
            (record("c", 2, "d2", Status::Queued, 0), None),
        ]
        .into_iter()
        .map(|(record, not_before)| Pending { record, not_before })
        .collect();
        let ready = take_ready(&mut pending, 10);
        assert_eq!(
            ready
                .iter()
                .map(|r| r.event_id.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(500));
        assert_eq!(p.backoff(3), Duration::from_secs(2));
        assert_eq!(p.backoff(40), Duration::from_secs(30));
    }

    struct Flaky {
        calls: Mutex<Vec<Vec<String>>>,
        fail_first: usize,
    }

    impl Apply for Flaky {
        fn apply<'a>(
            &'a self,
            _: &'a WorkspaceId,
            events: &'a [EventRecord],
        ) -> BoxFuture<'a, std::result::Result<Vec<Outcome>, String>> {
            Box::pin(async move {
                let mut calls = self.calls.lock().unwrap();
                calls.push(events.iter().map(|e| e.event_id.clone()).collect());
                if calls.len() <= self.fail_first {
                    return Err("lake unavailable".into());
                }
                Ok(events.iter().map(|_| Outcome::Processed).collect())
            })
        }
    }

    #[tokio::test]
    async fn events_are_committed_retried_and_resumed() {
        let lake = Lake::open(&format!("memory://queue-{}/", uuid::Uuid::new_v4()))
            .await
            .unwrap();
        let ws = WorkspaceId::new("acme").unwrap();
        let flaky = Arc::new(Flaky {
            calls: Mutex::new(Vec::new()),
            fail_first: 1,
        });
        let policy = RetryPolicy {
            first_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        let queue = Queue::start(lake.clone(), flaky.clone(), policy.clone())
            .await
            .unwrap();
        let ev = |id: &str| NewEvent {
            event_id: id.into(),
            deal_key: Some("generic:d1".into()),
            payload: "{}".into(),
        };
        let got = queue
            .enqueue(
                &ws,
                "generic",
                Utc::now(),
                vec![ev("g:1"), ev("g:2"), ev("g:1")],
            )
            .await
            .unwrap();
        assert_eq!(got.accepted, ["g:1", "g:2"]);
        assert_eq!(got.duplicates, ["g:1"]);
        // Committed before enqueue returned.
        let journal = read_journal(&lake).await.unwrap();
        assert!(
            journal
                .iter()
                .filter(|r| r.status == Status::Queued)
                .count()
                == 2
        );
        let again = queue
            .enqueue(&ws, "generic", Utc::now(), vec![ev("g:2")])
            .await
            .unwrap();
        assert_eq!(again.duplicates, ["g:2"]);

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let states = current_states(read_journal(&lake).await.unwrap());
            if states.iter().all(|s| s.status == Status::Processed) && states.len() == 2 {
                assert!(states.iter().all(|s| s.attempts == 2), "{states:?}");
                break;
            }
            assert!(Instant::now() < deadline, "not processed: {states:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(flaky.calls.lock().unwrap()[0], ["g:1", "g:2"]);

        // A new queue over the same lake knows the ids and resumes nothing.
        let fresh = Arc::new(Flaky {
            calls: Mutex::new(Vec::new()),
            fail_first: 0,
        });
        let reopened = Queue::start(lake.clone(), fresh.clone(), policy)
            .await
            .unwrap();
        let dup = reopened
            .enqueue(&ws, "generic", Utc::now(), vec![ev("g:1")])
            .await
            .unwrap();
        assert_eq!(dup.duplicates, ["g:1"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(fresh.calls.lock().unwrap().is_empty());
    }
}
