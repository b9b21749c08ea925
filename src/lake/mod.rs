//! The lake: Delta tables on an object store, one per dataset, at `<lake>/<layer>/<table>`.
//!
//! A lake is a URL: a local folder, `memory://NAME`, `s3://bucket/prefix`, `gs://bucket/prefix`
//! or `az://container/prefix` (credentials from each cloud's standard environment variables).
//! Every write is one Delta commit, so a failed or killed write leaves the previous version
//! readable; every version stays readable by number or timestamp until vacuumed.
//!
//! ```text
//! <lake>/raw/salesforce_opportunity/_delta_log/00000000000000000000.json
//!       /staging/deals/workspace_id=acme/part-....parquet
//! ```

mod error;
mod store;
mod table;
mod write;

use std::fmt;
use std::str::FromStr;

pub use error::{LakeError, Result};
pub use store::Lake;
pub use table::{AsOf, TableInfo};
pub use write::{WriteBuilder, WriteMode, WriteOutcome};

/// The layers of the lake, in data-flow order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Landed source records, full record kept; schemas evolve with the source.
    Raw,
    /// The unified model built by SQL transforms.
    Staging,
    /// Outputs of kernels and mart models (mining, simulation, scores).
    Marts,
    /// Operational tables (sync log, job runs, quality results).
    Ops,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Raw, Layer::Staging, Layer::Marts, Layer::Ops];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Raw => "raw",
            Layer::Staging => "staging",
            Layer::Marts => "marts",
            Layer::Ops => "ops",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        Layer::ALL.into_iter().find(|l| l.as_str() == s).ok_or(())
    }
}

/// A dataset name, `layer.table`: `staging.deals`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DatasetRef {
    pub layer: Layer,
    pub table: String,
}

impl DatasetRef {
    pub fn new(layer: Layer, table: impl Into<String>) -> Result<Self> {
        let table = table.into();
        if !is_identifier(&table) {
            return Err(LakeError::BadDatasetName {
                name: format!("{layer}.{table}"),
            });
        }
        Ok(Self { layer, table })
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.table)
    }
}

impl FromStr for DatasetRef {
    type Err = LakeError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || LakeError::BadDatasetName {
            name: s.to_string(),
        };
        let (layer, table) = s.split_once('.').ok_or_else(bad)?;
        let layer: Layer = layer.parse().map_err(|_| bad())?;
        DatasetRef::new(layer, table).map_err(|_| bad())
    }
}

/// A workspace (tenant) id: every row carries one and sessions are scoped to one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkspaceId(String);

impl WorkspaceId {
    pub fn new(id: &str) -> Result<Self> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            Ok(Self(id.to_string()))
        } else {
            Err(LakeError::BadWorkspace { id: id.to_string() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for WorkspaceId {
    type Err = LakeError;
    fn from_str(s: &str) -> Result<Self> {
        WorkspaceId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_parse_and_print() {
        let d: DatasetRef = "staging.deals".parse().unwrap();
        assert_eq!(d.layer, Layer::Staging);
        assert_eq!(d.to_string(), "staging.deals");
        for bad in [
            "deals",
            "gold.deals",
            "staging.",
            "staging.Deals",
            "raw.a-b",
            "x.y.z",
        ] {
            assert!(bad.parse::<DatasetRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn workspace_ids_refuse_quotes_and_spaces() {
        assert!(WorkspaceId::new("acme-eu_1").is_ok());
        for bad in ["", "a b", "a'b", "x\"", &"w".repeat(65)] {
            assert!(WorkspaceId::new(bad).is_err(), "{bad}");
        }
    }
}
