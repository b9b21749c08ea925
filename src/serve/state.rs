//! The server's settings and shared state: the lake, the key store, the per-key rate limiter,
//! and per-workspace caches of query sessions and forecast inputs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::Semaphore;

use super::error::{ApiError, Result, ServeError};
use super::keys::KeyStore;
use crate::lake::{Lake, WorkspaceId};
use crate::simulate::pipeline::ForecastInputs;
use crate::sql::{SessionOptions, SqlSession};

/// Settings of `revlake serve` (each a flag of the command).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Requests per minute each key may make, sustained.
    pub requests_per_minute: u32,
    /// Requests a key may make at once above the sustained rate.
    pub burst: u32,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Longest a `POST /api/sql` query may run.
    pub sql_timeout: Duration,
    /// Most rows a `POST /api/sql` answer holds (and the default `limit`).
    pub sql_max_rows: usize,
    /// Most runs a simulation or forecast request may ask for.
    pub max_simulations: u32,
    /// Simulations and forecasts run at once (others wait).
    pub concurrent_simulations: usize,
    /// How often the key table is re-read (a revocation takes effect within this).
    pub key_refresh: Duration,
    /// How long a workspace's query session and forecast inputs are reused before re-reading the
    /// lake (a pipeline run shows within this).
    pub cache_ttl: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            burst: 60,
            max_body_bytes: 64 * 1024,
            sql_timeout: Duration::from_secs(10),
            sql_max_rows: 1_000,
            max_simulations: 20_000,
            concurrent_simulations: 2,
            key_refresh: Duration::from_secs(2),
            cache_ttl: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// Refuses settings that would make the server unusable.
    pub fn validate(&self) -> Result<()> {
        let positive = |setting: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ServeError::BadSetting {
                    setting,
                    reason: "must be greater than zero".into(),
                })
            }
        };
        positive("--rate-limit", self.requests_per_minute > 0)?;
        positive("--burst", self.burst > 0)?;
        positive("--max-body", self.max_body_bytes > 0)?;
        positive("--sql-timeout", !self.sql_timeout.is_zero())?;
        positive("--sql-max-rows", self.sql_max_rows > 0)?;
        positive("--max-simulations", self.max_simulations >= MIN_SIMULATIONS)?;
        positive("--concurrent-simulations", self.concurrent_simulations > 0)
    }
}

/// The fewest runs a simulation request may ask for.
pub const MIN_SIMULATIONS: u32 = 100;

struct Cached<T> {
    at: Instant,
    value: Arc<T>,
}

/// Values per workspace, reused for a while.
struct Cache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<WorkspaceId, Cached<T>>>,
}

impl<T> Cache<T> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, workspace: &WorkspaceId) -> Option<Arc<T>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(workspace)
            .filter(|c| c.at.elapsed() < self.ttl)
            .map(|c| c.value.clone())
    }

    fn put(&self, workspace: &WorkspaceId, value: Arc<T>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            workspace.clone(),
            Cached {
                at: Instant::now(),
                value,
            },
        );
    }
}

/// Everything the handlers share.
pub struct AppState {
    pub lake: Lake,
    pub config: ServeConfig,
    pub keys: KeyStore,
    pub limiter: DefaultKeyedRateLimiter<String>,
    pub simulations: Semaphore,
    sessions: Cache<SqlSession>,
    inputs: Cache<ForecastInputs>,
}

impl AppState {
    pub fn new(lake: Lake, config: ServeConfig) -> Result<Arc<Self>> {
        config.validate()?;
        let per_minute = NonZeroU32::new(config.requests_per_minute).expect("validated above");
        let burst = NonZeroU32::new(config.burst).expect("validated above");
        Ok(Arc::new(Self {
            keys: KeyStore::new(lake.clone(), config.key_refresh),
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            simulations: Semaphore::new(config.concurrent_simulations),
            sessions: Cache::new(config.cache_ttl),
            inputs: Cache::new(config.cache_ttl),
            lake,
            config,
        }))
    }

    /// A query session that sees only `workspace`'s rows, in every table, and neither the seeds
    /// nor the key table.
    pub async fn session(&self, workspace: &WorkspaceId) -> Result<Arc<SqlSession>, ApiError> {
        if let Some(s) = self.sessions.get(workspace) {
            return Ok(s);
        }
        let options = SessionOptions {
            workspace: Some(workspace.clone()),
            as_of: None,
            seeds: None,
        };
        let session = SqlSession::open(&self.lake, &options)
            .await
            .map_err(|e| ApiError::from_sql("opening the workspace's tables", e))?;
        let keys = super::keys::KEYS_DATASET
            .parse()
            .expect("ops.api_keys is a valid dataset name");
        session
            .hide(&keys)
            .map_err(|e| ApiError::from_sql("hiding the key table", e))?;
        let session = Arc::new(session);
        self.sessions.put(workspace, session.clone());
        Ok(session)
    }

    /// The mined model, open deals, facts and quotas of `workspace`.
    pub async fn forecast_inputs(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Arc<ForecastInputs>, ApiError> {
        if let Some(i) = self.inputs.get(workspace) {
            return Ok(i);
        }
        let inputs = ForecastInputs::load(&self.lake, workspace, None)
            .await
            .map_err(|e| ApiError::from_simulate("loading the forecast inputs", e))?;
        let inputs = Arc::new(inputs);
        self.inputs.put(workspace, inputs.clone());
        Ok(inputs)
    }
}
