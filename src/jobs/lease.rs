//! A lease per (job, workspace) on the lake's object store, so that two schedulers (two
//! machines) never run the same job for the same workspace at once, and a crashed holder's
//! lease can be taken over once it expires.
//!
//! A lease is a sequence of generations, each an object written with a conditional put that
//! only creates (`PutMode::Create`): whoever creates generation `n + 1` after reading `n` as
//! the latest holds the lease; a contender that read the same `n` gets `AlreadyExists` and is
//! refused. Renewing, releasing and taking over an expired lease are all "create the next
//! generation", which makes every change a compare-and-swap on the generation number. Each
//! object holds its holder and expiry time, so an expired lease is recognized without any
//! clock but the contenders'. (Conditional *updates*, `PutMode::Update`, would do the same with
//! one object, but the local-folder store does not support them; creates work on every store.)
//!
//! ```text
//! <lake>/_revlake/leases/<job>/<workspace>/00000000000000000007.json
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{JobsError, Result};
use crate::lake::{Lake, WorkspaceId};

/// The folder of lease objects under the lake root.
pub const LEASES_PREFIX: &str = "_revlake/leases";

/// One generation of a lease, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub job: String,
    pub workspace: String,
    /// Who holds it: `host:pid:uuid` of a scheduler or a `run-job`.
    pub holder: String,
    pub generation: u64,
    pub acquired_at: DateTime<Utc>,
    /// After this instant anyone may take the lease over.
    pub expires_at: DateTime<Utc>,
    /// Set by a release: free right away.
    #[serde(default)]
    pub released: bool,
}

impl LeaseRecord {
    fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.released || self.expires_at <= now
    }
}

/// A held lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub job: String,
    pub workspace: WorkspaceId,
    pub holder: String,
    pub generation: u64,
    pub expires_at: DateTime<Utc>,
}

/// What [`Leases::acquire`] got.
#[derive(Debug, Clone, PartialEq)]
pub enum Acquired {
    Held(Lease),
    /// Someone else holds it until `expires_at`.
    Refused {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// The lease objects of a lake.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("url", &self.url).finish()
    }
}

/// A holder id for this process: `host:pid:` and a random suffix.
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &suffix[..8])
}

impl Leases {
    /// The leases of `lake`, on its object store.
    pub fn for_lake(lake: &Lake) -> Result<Self> {
        Ok(Self::new(lake.root_store()?, lake.url().to_string()))
    }

    /// Leases on any store rooted at the lake (tests use in-memory and local stores).
    pub fn new(store: Arc<dyn ObjectStore>, url: impl Into<String>) -> Self {
        Self {
            store,
            url: url.into(),
        }
    }

    fn folder(job: &str, workspace: &WorkspaceId) -> StorePath {
        StorePath::from(format!("{LEASES_PREFIX}/{job}/{workspace}"))
    }

    fn key(job: &str, workspace: &WorkspaceId) -> String {
        format!("{job}/{workspace}")
    }

    fn err(&self, job: &str, workspace: &WorkspaceId, source: object_store::Error) -> JobsError {
        JobsError::Lease {
            key: Self::key(job, workspace),
            url: self.url.clone(),
            source,
        }
    }

    /// The latest generation of the lease, if any was ever written.
    pub async fn current(&self, job: &str, workspace: &WorkspaceId) -> Result<Option<LeaseRecord>> {
        let folder = Self::folder(job, workspace);
        let objects: Vec<_> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(|e| self.err(job, workspace, e))?;
        let latest = objects
            .iter()
            .filter_map(|m| {
                let name = m.location.filename()?;
                let generation: u64 = name.strip_suffix(".json")?.parse().ok()?;
                Some((generation, m.location.clone()))
            })
            .max_by_key(|(g, _)| *g);
        let Some((generation, location)) = latest else {
            return Ok(None);
        };
        let bytes = match self.store.get(&location).await {
            Ok(r) => r.bytes().await.map_err(|e| self.err(job, workspace, e))?,
            // Cleaned up between the listing and the read: a newer one exists; read again.
            Err(object_store::Error::NotFound { .. }) => {
                return Box::pin(self.current(job, workspace)).await;
            }
            Err(e) => return Err(self.err(job, workspace, e)),
        };
        let record: LeaseRecord =
            serde_json::from_slice(&bytes).map_err(|e| JobsError::BadLease {
                key: location.to_string(),
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        if record.generation != generation {
            return Err(JobsError::BadLease {
                key: location.to_string(),
                url: self.url.clone(),
                reason: format!("holds generation {}", record.generation),
            });
        }
        Ok(Some(record))
    }

    /// Writes generation `record.generation` if nobody has; `false` if someone did first.
    async fn create(&self, record: &LeaseRecord) -> Result<bool> {
        let workspace = WorkspaceId::new(&record.workspace)?;
        let location = Self::folder(&record.job, &workspace)
            .clone()
            .join(format!("{:020}.json", record.generation));
        let body = serde_json::to_vec_pretty(record).map_err(|e| JobsError::BadLease {
            key: location.to_string(),
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&location, PutPayload::from(body), options)
            .await
        {
            Ok(_) => {
                self.prune(&record.job, &workspace, record.generation).await;
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.err(&record.job, &workspace, e)),
        }
    }

    /// Deletes generations older than the previous one (best effort: garbage is harmless).
    async fn prune(&self, job: &str, workspace: &WorkspaceId, latest: u64) {
        let Ok(objects) = self
            .store
            .list(Some(&Self::folder(job, workspace)))
            .try_collect::<Vec<_>>()
            .await
        else {
            return;
        };
        for m in objects {
            let old = m
                .location
                .filename()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|g| g + 1 < latest);
            if old {
                let _ = self.store.delete(&m.location).await;
            }
        }
    }

    /// Takes the lease for `ttl` if it is free (never taken, released or expired at `now`),
    /// or already ours.
    pub async fn acquire(
        &self,
        job: &str,
        workspace: &WorkspaceId,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Acquired> {
        let current = self.current(job, workspace).await?;
        if let Some(c) = &current
            && !c.is_free(now)
            && c.holder != holder
        {
            return Ok(Acquired::Refused {
                holder: c.holder.clone(),
                expires_at: c.expires_at,
            });
        }
        let record = LeaseRecord {
            job: job.to_string(),
            workspace: workspace.to_string(),
            holder: holder.to_string(),
            generation: current.as_ref().map_or(0, |c| c.generation + 1),
            acquired_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            released: false,
        };
        if self.create(&record).await? {
            tracing::debug!(job, workspace = %workspace, holder, generation = record.generation, "lease taken");
            return Ok(Acquired::Held(Lease {
                job: job.to_string(),
                workspace: workspace.clone(),
                holder: holder.to_string(),
                generation: record.generation,
                expires_at: record.expires_at,
            }));
        }
        // Lost the race: report who won.
        let winner = self.current(job, workspace).await?;
        Ok(Acquired::Refused {
            holder: winner
                .as_ref()
                .map_or_else(String::new, |w| w.holder.clone()),
            expires_at: winner.map_or(now, |w| w.expires_at),
        })
    }

    /// Extends a held lease to `now + ttl`; `false` when it was lost (taken over after it
    /// expired): the holder must then stop.
    pub async fn renew(
        &self,
        lease: &mut Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let record = LeaseRecord {
            job: lease.job.clone(),
            workspace: lease.workspace.to_string(),
            holder: lease.holder.clone(),
            generation: lease.generation + 1,
            acquired_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            released: false,
        };
        if self.create(&record).await? {
            lease.generation = record.generation;
            lease.expires_at = record.expires_at;
            return Ok(true);
        }
        Ok(false)
    }

    /// Frees a held lease; a lease already lost is left to its new holder.
    pub async fn release(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
        let record = LeaseRecord {
            job: lease.job.clone(),
            workspace: lease.workspace.to_string(),
            holder: lease.holder.clone(),
            generation: lease.generation + 1,
            acquired_at: now,
            expires_at: now,
            released: true,
        };
        if !self.create(&record).await? {
            tracing::warn!(job = %lease.job, workspace = %lease.workspace, "lease was taken over before release");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;

    fn ws() -> WorkspaceId {
        WorkspaceId::new("acme").unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const TTL: Duration = Duration::from_secs(60);

    async fn two_contenders_one_wins(leases: Leases) {
        let now = t("2025-01-01T00:00:00Z");
        let w = ws();
        let (a, b) = tokio::join!(
            leases.acquire("daily", &w, "a", TTL, now),
            leases.acquire("daily", &w, "b", TTL, now)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let winners = [&a, &b]
            .iter()
            .filter(|x| matches!(x, Acquired::Held(_)))
            .count();
        assert_eq!(winners, 1, "{a:?} {b:?}");
        let (held, loser) = match (&a, &b) {
            (Acquired::Held(l), _) => (l.clone(), "b"),
            (_, Acquired::Held(l)) => (l.clone(), "a"),
            _ => unreachable!(),
        };
        // The loser is refused while the lease runs, naming the holder.
        match leases
            .acquire("daily", &ws(), loser, TTL, now)
            .await
            .unwrap()
        {
            Acquired::Refused { holder, expires_at } => {
                assert_eq!(holder, held.holder);
                assert_eq!(expires_at, t("2025-01-01T00:01:00Z"));
            }
            other => panic!("{other:?}"),
        }
        // Another job or workspace is another lease.
        assert!(matches!(
            leases
                .acquire("hourly", &ws(), loser, TTL, now)
                .await
                .unwrap(),
            Acquired::Held(_)
        ));
    }

    async fn expired_lease_is_taken_over(leases: Leases) {
        let now = t("2025-01-01T00:00:00Z");
        let Acquired::Held(mut crashed) =
            leases.acquire("daily", &ws(), "a", TTL, now).await.unwrap()
        else {
            panic!("first acquire refused")
        };
        // Renewed in time: still a's.
        assert!(
            leases
                .renew(&mut crashed, TTL, t("2025-01-01T00:00:30Z"))
                .await
                .unwrap()
        );
        assert!(matches!(
            leases
                .acquire("daily", &ws(), "b", TTL, t("2025-01-01T00:01:00Z"))
                .await
                .unwrap(),
            Acquired::Refused { .. }
        ));
        // a "crashes": no renewal; after expiry b takes over.
        let later = t("2025-01-01T00:01:31Z");
        let Acquired::Held(b) = leases
            .acquire("daily", &ws(), "b", TTL, later)
            .await
            .unwrap()
        else {
            panic!("expired lease not taken over")
        };
        assert_eq!(b.generation, crashed.generation + 1);
        // a comes back: its renewal fails, and its release leaves b's lease alone.
        assert!(!leases.renew(&mut crashed, TTL, later).await.unwrap());
        leases.release(&crashed, later).await.unwrap();
        assert_eq!(
            leases
                .current("daily", &ws())
                .await
                .unwrap()
                .unwrap()
                .holder,
            "b"
        );
        // b releases: free at once.
        leases.release(&b, later).await.unwrap();
        assert!(matches!(
            leases
                .acquire("daily", &ws(), "c", TTL, later)
                .await
                .unwrap(),
            Acquired::Held(_)
        ));
    }

    #[tokio::test]
    async fn in_memory_two_contenders_one_wins() {
        two_contenders_one_wins(Leases::new(Arc::new(InMemory::new()), "memory://t")).await;
    }

    #[tokio::test]
    async fn in_memory_expired_lease_is_taken_over() {
        expired_lease_is_taken_over(Leases::new(Arc::new(InMemory::new()), "memory://t")).await;
    }

    #[tokio::test]
    async fn local_two_contenders_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        two_contenders_one_wins(Leases::new(Arc::new(store), "file://t")).await;
    }

    #[tokio::test]
    async fn local_expired_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        expired_lease_is_taken_over(Leases::new(Arc::new(store), "file://t")).await;
    }

    #[tokio::test]
    async fn many_contenders_on_a_local_folder_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let now = t("2025-01-01T00:00:00Z");
        let mut tasks = Vec::new();
        for i in 0..8 {
            let leases = Leases::new(store.clone(), "file://t");
            tasks.push(tokio::spawn(async move {
                leases
                    .acquire("daily", &ws(), &format!("h{i}"), TTL, now)
                    .await
                    .unwrap()
            }));
        }
        let mut held = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Acquired::Held(_)) {
                held += 1;
            }
        }
        assert_eq!(held, 1);
    }
}
