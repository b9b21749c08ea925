//! The server's settings and shared state: the lake, the key store, the per-key rate limiter,
//! and per-workspace caches of query sessions and forecast inputs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
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
    /// The project folder: `POST /api/import/connect` adds connections to its pipeline files,
    /// the import endpoints read its schemas and run its checks (none: connections are refused).
    pub project_root: Option<PathBuf>,
    /// Largest file `POST /api/import/files` accepts, in bytes (413 above).
    pub max_upload_bytes: u64,
    /// Whether `POST /api/import/connect` may set a connection's `base_url` (off: the vendor's
    /// public API only, so no key can send the server's credentials to a host of its choosing).
    pub allow_connection_base_url: bool,
    /// Background jobs (syncs) run at once (others wait, `queued`).
    pub concurrent_jobs: usize,
    /// Requests per minute each client address may make without a valid key, sustained.
    pub anonymous_per_minute: u32,
    /// Requests a client address may make at once without a valid key above that rate.
    pub anonymous_burst: u32,
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
            project_root: None,
            max_upload_bytes: 1024 * 1024 * 1024,
            allow_connection_base_url: false,
            concurrent_jobs: 2,
            anonymous_per_minute: 120,
            anonymous_burst: 60,
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
        positive("--max-upload", self.max_upload_bytes > 0)?;
        positive("--concurrent-jobs", self.concurrent_jobs > 0)?;
        positive("--anonymous-rate-limit", self.anonymous_per_minute > 0)?;
        positive("--anonymous-burst", self.anonymous_burst > 0)?;
        positive("--concurrent-simulations", self.concurrent_simulations > 0)
    }
}

/// The fewest runs a simulation request may ask for.
pub const MIN_SIMULATIONS: u32 = 100;

struct Cached<T> {
    at: Instant,
    value: Arc<T>,
}

/// What the cache holds for a workspace.
enum Lookup<T> {
    Fresh(Arc<T>),
    /// Older than the time to live: still served while one reload runs in the background.
    Stale(Arc<T>),
    Missing,
}

/// Values per workspace, reused for a while. One load per workspace runs at a time: when a
/// value expires, the requests that find it keep getting the old one while a single reload
/// runs in the background (without this, every request in flight reloaded at once and all of
/// them waited the reload's time: `revlake bench serve` saw 13–20 s answers every 10 s); a
/// workspace never loaded makes its first requests wait for one shared load.
struct Cache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<WorkspaceId, Cached<T>>>,
    loading: Mutex<HashMap<WorkspaceId, Arc<tokio::sync::Mutex<()>>>>,
}

impl<T: Send + Sync + 'static> Cache<T> {
    fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
        })
    }

    fn lookup(&self, workspace: &WorkspaceId) -> Lookup<T> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(workspace) {
            Some(c) if c.at.elapsed() < self.ttl => Lookup::Fresh(c.value.clone()),
            Some(c) => Lookup::Stale(c.value.clone()),
            None => Lookup::Missing,
        }
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

    /// The workspace's load lock.
    fn lock_of(&self, workspace: &WorkspaceId) -> Arc<tokio::sync::Mutex<()>> {
        let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        loading.entry(workspace.clone()).or_default().clone()
    }

    /// The workspace's value: the cached one (a stale one starts a background reload unless
    /// one is running), else the result of `load`, run once for all the requests waiting.
    async fn get_or_load<F, Fut>(
        self: &Arc<Self>,
        workspace: &WorkspaceId,
        load: F,
    ) -> Result<Arc<T>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        match self.lookup(workspace) {
            Lookup::Fresh(v) => Ok(v),
            Lookup::Stale(v) => {
                if let Ok(guard) = self.lock_of(workspace).try_lock_owned() {
                    let cache = self.clone();
                    let workspace = workspace.clone();
                    let reload = load();
                    tokio::spawn(async move {
                        let _guard = guard;
                        match reload.await {
                            Ok(fresh) => cache.put(&workspace, Arc::new(fresh)),
                            // The old value stays; the next request after it tries again.
                            Err(e) => tracing::warn!(
                                workspace = %workspace,
                                error = %e.message,
                                "reloading a cached value failed: serving the previous one"
                            ),
                        }
                    });
                }
                Ok(v)
            }
            Lookup::Missing => {
                let lock = self.lock_of(workspace);
                let _guard = lock.lock().await;
                // Loaded by the request this one waited for.
                if let Lookup::Fresh(v) | Lookup::Stale(v) = self.lookup(workspace) {
                    return Ok(v);
                }
                let value = Arc::new(load().await?);
                self.put(workspace, value.clone());
                Ok(value)
            }
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    pub lake: Lake,
    pub config: ServeConfig,
    pub keys: KeyStore,
    pub limiter: DefaultKeyedRateLimiter<String>,
    pub simulations: Semaphore,
    /// Background jobs started by the import endpoints.
    pub jobs: Arc<super::jobs::JobTable>,
    /// The request budget of each client address for requests without a valid key.
    pub ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
    sessions: Arc<Cache<SqlSession>>,
    inputs: Arc<Cache<ForecastInputs>>,
    /// The webhook receivers and their queue, once started ([`super::webhooks::Webhooks::start`]).
    pub webhooks: std::sync::OnceLock<Arc<super::webhooks::Webhooks>>,
}

impl AppState {
    pub fn new(lake: Lake, config: ServeConfig) -> Result<Arc<Self>> {
        config.validate()?;
        let per_minute = NonZeroU32::new(config.requests_per_minute).expect("validated above");
        let burst = NonZeroU32::new(config.burst).expect("validated above");
        let anonymous = NonZeroU32::new(config.anonymous_per_minute).expect("validated above");
        let anonymous_burst = NonZeroU32::new(config.anonymous_burst).expect("validated above");
        Ok(Arc::new(Self {
            keys: KeyStore::new(lake.clone(), config.key_refresh),
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            simulations: Semaphore::new(config.concurrent_simulations),
            jobs: super::jobs::JobTable::new(config.concurrent_jobs),
            ip_limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(anonymous).allow_burst(anonymous_burst),
            ),
            sessions: Cache::new(config.cache_ttl),
            inputs: Cache::new(config.cache_ttl),
            webhooks: std::sync::OnceLock::new(),
            lake,
            config,
        }))
    }

    /// A query session that sees only `workspace`'s rows, in every table, and neither the seeds
    /// nor the key table.
    pub async fn session(&self, workspace: &WorkspaceId) -> Result<Arc<SqlSession>, ApiError> {
        let lake = self.lake.clone();
        let ws = workspace.clone();
        self.sessions
            .get_or_load(workspace, move || async move {
                let options = SessionOptions {
                    workspace: Some(ws),
                    as_of: None,
                    seeds: None,
                };
                let session = SqlSession::open(&lake, &options)
                    .await
                    .map_err(|e| ApiError::from_sql("opening the workspace's tables", e))?;
                let keys = super::keys::KEYS_DATASET
                    .parse()
                    .expect("ops.api_keys is a valid dataset name");
                session
                    .hide(&keys)
                    .map_err(|e| ApiError::from_sql("hiding the key table", e))?;
                Ok(session)
            })
            .await
    }

    /// The mined model, open deals, facts and quotas of `workspace`.
    pub async fn forecast_inputs(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Arc<ForecastInputs>, ApiError> {
        let lake = self.lake.clone();
        let ws = workspace.clone();
        self.inputs
            .get_or_load(workspace, move || async move {
                ForecastInputs::load(&lake, &ws, None)
                    .await
                    .map_err(|e| ApiError::from_simulate("loading the forecast inputs", e))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A loader that takes a while and returns how many loads ran, itself included.
    fn counting(
        loads: &Arc<AtomicUsize>,
    ) -> impl FnOnce() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<usize, ApiError>> + Send>,
    > + use<> {
        let loads = loads.clone();
        move || {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                Ok(loads.fetch_add(1, Ordering::SeqCst) + 1)
            })
        }
    }

    #[tokio::test]
    async fn waiting_requests_share_one_load_and_a_stale_value_is_served_during_one_reload() {
        let cache: Arc<Cache<usize>> = Cache::new(Duration::from_millis(100));
        let ws = WorkspaceId::new("w").unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let first =
            futures::future::join_all((0..8).map(|_| cache.get_or_load(&ws, counting(&loads))))
                .await;
        assert!(first.iter().all(|v| *v.as_ref().unwrap().as_ref() == 1));
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for 8 requests");

        tokio::time::sleep(Duration::from_millis(120)).await;
        // Expired: every request gets the old value at once, and one reload starts.
        let stale =
            futures::future::join_all((0..8).map(|_| cache.get_or_load(&ws, counting(&loads))))
                .await;
        assert!(stale.iter().all(|v| *v.as_ref().unwrap().as_ref() == 1));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(loads.load(Ordering::SeqCst), 2, "one reload for 8 requests");
        assert_eq!(*cache.get_or_load(&ws, counting(&loads)).await.unwrap(), 2);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_first_load_is_an_error_and_the_next_request_loads_again() {
        let cache: Arc<Cache<usize>> = Cache::new(Duration::from_secs(60));
        let ws = WorkspaceId::new("w").unwrap();
        let failed = cache
            .get_or_load(&ws, || async {
                Err(ApiError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "no_deals",
                    "no deals",
                ))
            })
            .await;
        assert_eq!(failed.unwrap_err().code, "no_deals");
        let loads = Arc::new(AtomicUsize::new(0));
        assert_eq!(*cache.get_or_load(&ws, counting(&loads)).await.unwrap(), 1);
    }
}
