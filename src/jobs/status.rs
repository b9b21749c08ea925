//! Freshness: when each dataset was last refreshed (its latest Delta commit), and which are
//! stale.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;
use crate::lake::{Lake, Layer};

/// One dataset's freshness.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    pub dataset: String,
    pub version: i64,
    pub rows: u64,
    /// The latest commit: the last successful refresh (a failed stage commits nothing).
    pub last_commit: Option<DateTime<Utc>>,
    pub age_seconds: Option<i64>,
    /// Older than the threshold (operational `ops.*` logs are never stale: they are written
    /// when something happens).
    pub stale: bool,
}

/// The freshness of every dataset of `lake` at `now`; older than `stale_after` is stale.
pub async fn freshness(
    lake: &Lake,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> Result<Vec<Freshness>> {
    let mut out = Vec::new();
    let threshold = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
    for dataset in lake.datasets().await? {
        let info = lake.info(&dataset).await?;
        let age = info.last_commit.map(|t| now - t);
        out.push(Freshness {
            dataset: info.dataset.clone(),
            version: info.version,
            rows: info.rows,
            last_commit: info.last_commit,
            age_seconds: age.map(|a| a.num_seconds()),
            stale: dataset.layer != Layer::Ops && age.is_none_or(|a| a > threshold),
        });
    }
    Ok(out)
}
