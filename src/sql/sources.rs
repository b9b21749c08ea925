//! Declared sources: the raw tables the models read, with the columns they read from each, in
//! `transforms/sources.toml` (dbt's `sources:` block).
//!
//! ```toml
//! [[tables]]
//! name = "raw.pipedrive_deals"
//! description = "Pipedrive deals (the pipedrive connector's `deals` stream)."
//! columns = ["id", "title", "value", "currency", "stage_id", "status"]
//! ```
//!
//! A lake holds the raw tables of the systems an organization actually uses: a Salesforce-only
//! org has no `raw.hubspot_*` and no `raw.pipedrive_*`. In a model run, a declared table the
//! lake does not have reads as an **empty** table of its declared columns (all `Utf8`, plus
//! `workspace_id`, `source_data` and `_synced_at`), so a model that unions every CRM builds from
//! the ones that are there. A declared table the lake has but that lacks some declared columns
//! (an export without an optional field) reads those columns as null `Utf8`. Models therefore
//! `CAST` every raw column they read.
//!
//! Only `raw.*` tables can be declared; an input that is neither built by a model, nor in the
//! lake, nor declared is still refused ([`ModelDag::check_inputs`](super::models::ModelDag::check_inputs)).

use std::path::Path;

use serde::Deserialize;

use super::error::{Result, SqlError};
use crate::lake::{DatasetRef, Layer};

/// The file, under the transforms folder, that declares the sources.
pub const SOURCES_FILE: &str = "sources.toml";

/// Columns every declared table has even when the lake lacks it.
pub const ALWAYS_COLUMNS: [&str; 3] = ["workspace_id", "source_data", "_synced_at"];

/// `transforms/sources.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    #[serde(default)]
    tables: Vec<RawSourceTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSourceTable {
    /// `raw.<table>`.
    name: String,
    /// What the table holds and which connector or import lands it.
    #[serde(default)]
    description: String,
    /// The columns the models read (landed names).
    columns: Vec<String>,
}

/// One declared raw table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub dataset: DatasetRef,
    pub description: String,
    /// The declared columns, without duplicates, in file order.
    pub columns: Vec<String>,
}

impl SourceTable {
    /// The declared columns and [`ALWAYS_COLUMNS`], without duplicates.
    pub fn all_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = ALWAYS_COLUMNS.to_vec();
        for c in &self.columns {
            if !out.contains(&c.as_str()) {
                out.push(c);
            }
        }
        out
    }
}

/// Reads `<transforms>/sources.toml`; a missing file declares nothing.
pub fn load(transforms_dir: &Path) -> Result<Vec<SourceTable>> {
    let path = transforms_dir.join(SOURCES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(SqlError::Model {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Parses a sources file's text; errors name `path` and the line.
pub fn parse(text: &str, path: &Path) -> Result<Vec<SourceTable>> {
    let at = |line: usize, message: String| SqlError::Model {
        path: format!("{}:{line}", path.display()),
        message,
    };
    let raw: RawSources = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_at(text, s.start));
        at(line, e.message().to_string())
    })?;
    let mut out: Vec<SourceTable> = Vec::with_capacity(raw.tables.len());
    for t in raw.tables {
        let line = line_of(text, &format!("\"{}\"", t.name));
        let dataset: DatasetRef = t
            .name
            .parse()
            .map_err(|_| at(line, format!("`{}` is not a `layer.table` name", t.name)))?;
        if dataset.layer != Layer::Raw {
            return Err(at(
                line,
                format!("`{dataset}` is not a raw table: only `raw.*` tables are declared sources"),
            ));
        }
        if out.iter().any(|o| o.dataset == dataset) {
            return Err(at(line, format!("`{dataset}` is declared twice")));
        }
        let mut columns: Vec<String> = Vec::with_capacity(t.columns.len());
        for c in t.columns {
            let c = c.trim().to_string();
            if c.is_empty() {
                return Err(at(
                    line,
                    format!("`{dataset}` declares an empty column name"),
                ));
            }
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        out.push(SourceTable {
            dataset,
            description: t.description,
            columns,
        });
    }
    Ok(out)
}

/// 1-based line of byte offset `at`.
fn line_at(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// 1-based line of the first occurrence of `needle` (1 if absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |at| line_at(text, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_raw_tables_with_their_columns() {
        let text =
            "[[tables]]\nname = \"raw.pipedrive_deals\"\ncolumns = [\"id\", \"title\", \"id\"]\n";
        let t = parse(text, Path::new("sources.toml")).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].dataset.to_string(), "raw.pipedrive_deals");
        assert_eq!(t[0].columns, ["id", "title"]);
        assert_eq!(
            t[0].all_columns(),
            ["workspace_id", "source_data", "_synced_at", "id", "title"]
        );
    }

    #[test]
    fn refuses_a_non_raw_table_naming_file_and_line() {
        let text = "[[tables]]\nname = \"raw.a\"\ncolumns = []\n\n[[tables]]\nname = \"staging.deals\"\ncolumns = [\"id\"]\n";
        let e = parse(text, Path::new("t/sources.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t/sources.toml:6") && e.contains("only `raw.*`"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_with_its_line() {
        let text = "[[tables]]\nname = \"raw.a\"\ncolumns = []\ncolums = []\n";
        let e = parse(text, Path::new("sources.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.toml:4") && e.contains("colums"), "{e}");
    }
}
