//! Reading datasets: latest or time-travelled versions, and their statistics.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;

use super::{DatasetRef, Lake, LakeError, Result};
use crate::project::WORKSPACE_COLUMN;

/// A point in a dataset's history: a Delta version, or the latest version committed at or
/// before a timestamp.
#[derive(Debug, Clone, PartialEq)]
pub enum AsOf {
    Version(i64),
    Timestamp(DateTime<Utc>),
}

impl FromStr for AsOf {
    type Err = LakeError;
    /// `12` (a version), `2025-06-30T12:00:00Z` (RFC 3339) or `2025-06-30` (end of that UTC day).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Ok(v) = s.parse::<i64>()
            && v >= 0
        {
            return Ok(AsOf::Version(v));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(AsOf::Timestamp(t.with_timezone(&Utc)));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
            && let Some(t) = d.and_hms_milli_opt(23, 59, 59, 999)
        {
            return Ok(AsOf::Timestamp(t.and_utc()));
        }
        Err(LakeError::BadAsOf {
            input: s.to_string(),
        })
    }
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Version(v) => write!(f, "version {v}"),
            AsOf::Timestamp(t) => write!(f, "{}", t.to_rfc3339()),
        }
    }
}

/// What `revlake tables` shows of a dataset.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableInfo {
    pub dataset: String,
    pub version: i64,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    pub last_commit: Option<DateTime<Utc>>,
    /// Rows per workspace (from the partition values and file statistics).
    pub workspaces: BTreeMap<String, u64>,
}

fn is_missing_table(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_)
    )
}

impl Lake {
    /// Loads the latest version of `dataset`, or `None` if it does not exist yet.
    pub async fn try_load(&self, dataset: &DatasetRef) -> Result<Option<DeltaTable>> {
        let url = self.table_url(dataset);
        if url.scheme() == "file" {
            let exists = url
                .to_file_path()
                .is_ok_and(|p| p.join("_delta_log").is_dir());
            if !exists {
                return Ok(None);
            }
        }
        match self.table_builder(dataset)?.load().await {
            Ok(t) => Ok(Some(t)),
            Err(e) if is_missing_table(&e) => Ok(None),
            Err(source) => Err(self.delta_err("load", dataset, source)),
        }
    }

    /// Loads `dataset` at `as_of` (latest when `None`); a missing dataset is an error.
    pub async fn load(&self, dataset: &DatasetRef, as_of: Option<&AsOf>) -> Result<DeltaTable> {
        let latest = self
            .try_load(dataset)
            .await?
            .ok_or_else(|| LakeError::NoSuchDataset {
                dataset: dataset.clone(),
                url: self.url().to_string(),
            })?;
        let Some(as_of) = as_of else {
            return Ok(latest);
        };
        let latest_version = latest.version().map_or(-1, |v| v as i64);
        let builder = self.table_builder(dataset)?;
        match as_of {
            AsOf::Version(v) => {
                if *v > latest_version {
                    return Err(LakeError::NoSuchVersion {
                        dataset: dataset.clone(),
                        version: *v,
                        latest: latest_version,
                    });
                }
                builder
                    .with_version(*v as u64)
                    .load()
                    .await
                    .map_err(|source| self.delta_err("time travel", dataset, source))
            }
            AsOf::Timestamp(t) => {
                // The first commit's time bounds what exists; before it there is no table.
                let first = self.table_builder(dataset)?.with_version(0).load().await;
                if let Ok(first) = first {
                    let created = first
                        .snapshot()
                        .ok()
                        .and_then(|s| s.version_timestamp(0))
                        .and_then(DateTime::from_timestamp_millis);
                    if created.is_some_and(|c| c > *t) {
                        return Err(LakeError::NoVersionAtTime {
                            dataset: dataset.clone(),
                            timestamp: t.to_rfc3339(),
                        });
                    }
                }
                builder
                    .with_timestamp(*t)
                    .load()
                    .await
                    .map_err(|source| match source {
                        DeltaTableError::InvalidVersion(_) | DeltaTableError::NotATable(_) => {
                            LakeError::NoVersionAtTime {
                                dataset: dataset.clone(),
                                timestamp: t.to_rfc3339(),
                            }
                        }
                        source => self.delta_err("time travel", dataset, source),
                    })
            }
        }
    }

    /// The last version an application recorded in `dataset` with a Delta transaction action
    /// (`txn`, committed atomically with the data it covers), or `None`.
    pub async fn app_transaction(&self, dataset: &DatasetRef, app_id: &str) -> Result<Option<i64>> {
        let Some(table) = self.try_load(dataset).await? else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .map_err(|source| self.delta_err("read the log of", dataset, source))?;
        snapshot
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .map_err(|source| self.delta_err("read the transactions of", dataset, source))
    }

    /// The Arrow schema of `dataset`'s latest version, or `None` if it does not exist yet.
    pub async fn arrow_schema(
        &self,
        dataset: &DatasetRef,
    ) -> Result<Option<arrow::datatypes::SchemaRef>> {
        use deltalake::kernel::engine::arrow_conversion::TryFromKernel;
        let Some(table) = self.try_load(dataset).await? else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .map_err(|source| self.delta_err("read the log of", dataset, source))?;
        let schema = arrow::datatypes::Schema::try_from_kernel(snapshot.schema().as_ref())
            .map_err(|e| {
                self.delta_err(
                    "read the schema of",
                    dataset,
                    DeltaTableError::Generic(e.to_string()),
                )
            })?;
        Ok(Some(std::sync::Arc::new(schema)))
    }

    /// Version, row, file and byte counts of `dataset`, with rows per workspace.
    pub async fn info(&self, dataset: &DatasetRef) -> Result<TableInfo> {
        self.info_of(dataset, None).await
    }

    /// [`Lake::info`] of the version `as_of` names (the row counts come from the file
    /// statistics of that version's log; no data file is read).
    pub async fn info_at(&self, dataset: &DatasetRef, as_of: &AsOf) -> Result<TableInfo> {
        self.info_of(dataset, Some(as_of)).await
    }

    async fn info_of(&self, dataset: &DatasetRef, as_of: Option<&AsOf>) -> Result<TableInfo> {
        let table = self.load(dataset, as_of).await?;
        let version = table.version().map_or(-1, |v| v as i64);
        let last_commit = table
            .snapshot()
            .ok()
            .and_then(|s| s.version_timestamp(version.max(0) as u64))
            .and_then(DateTime::from_timestamp_millis);
        let files: Vec<_> = table
            .get_active_add_actions_by_predicate(None)
            .try_collect()
            .await
            .map_err(|source| self.delta_err("list files", dataset, source))?;
        let mut info = TableInfo {
            dataset: dataset.to_string(),
            version,
            rows: 0,
            files: files.len(),
            bytes: 0,
            last_commit,
            workspaces: BTreeMap::new(),
        };
        for f in &files {
            let rows = f.num_records().unwrap_or(0) as u64;
            info.rows += rows;
            info.bytes += f.size().max(0) as u64;
            let ws = f
                .partition_values_map()
                .get(WORKSPACE_COLUMN)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "(unpartitioned)".to_string());
            *info.workspaces.entry(ws).or_default() += rows;
        }
        Ok(info)
    }

    pub(crate) fn delta_err(
        &self,
        operation: &'static str,
        dataset: &DatasetRef,
        source: DeltaTableError,
    ) -> LakeError {
        LakeError::Delta {
            operation,
            dataset: dataset.clone(),
            url: self.table_url(dataset).to_string(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_parses_versions_timestamps_and_dates() {
        assert_eq!("3".parse::<AsOf>().unwrap(), AsOf::Version(3));
        assert!(matches!(
            "2025-06-30T12:00:00Z".parse::<AsOf>().unwrap(),
            AsOf::Timestamp(_)
        ));
        assert!(matches!(
            "2025-06-30".parse::<AsOf>().unwrap(),
            AsOf::Timestamp(_)
        ));
        assert!("-1".parse::<AsOf>().is_err());
        assert!("yesterday".parse::<AsOf>().is_err());
    }
}
