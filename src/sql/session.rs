//! The DataFusion session over the lake: every dataset registered as `layer.table`, optionally
//! scoped to one workspace and to one point in time.

use std::sync::Arc;

use datafusion::catalog::{MemorySchemaProvider, TableProvider};
use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::ViewTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext, lit};
use futures::{StreamExt, TryStreamExt};

use super::error::{Result, SqlError};
use super::guard::check_read_only;
use crate::lake::{AsOf, DatasetRef, Lake, LakeError, Layer, WorkspaceId};
use crate::project::WORKSPACE_COLUMN;

/// Options of a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Restrict every table to this workspace's rows.
    pub workspace: Option<WorkspaceId>,
    /// Read every table as of this version or time.
    pub as_of: Option<AsOf>,
    /// A folder of seed CSVs, registered as `seeds.<file stem>`.
    pub seeds: Option<std::path::PathBuf>,
}

/// The environment variable that caps the memory of query operators (`8G`, `512M`, bytes).
pub const MEMORY_LIMIT_ENV: &str = "REVLAKE_MEMORY_LIMIT";

/// The runtime of every session: a memory pool shared by all the queries of the session (the
/// models a run builds at once), so sorts, aggregations and windows spill to temporary files
/// instead of growing without bound, and an operator that cannot spill (a hash join's build
/// side) fails with a "Resources exhausted" error naming the largest consumers rather than
/// the process being killed. The cap is `REVLAKE_MEMORY_LIMIT`, else half the machine's memory.
fn runtime() -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;

    let limit = match std::env::var(MEMORY_LIMIT_ENV) {
        Ok(text) => Some(parse_bytes(&text).ok_or_else(|| SqlError::Execution {
            source: Box::new(DataFusionError::Configuration(format!(
                "{MEMORY_LIMIT_ENV}={text:?} is not a size: use bytes or a number with K, M, G or T, e.g. 8G"
            ))),
        })?),
        Err(_) => total_memory().map(|total| total / 2),
    };
    let mut builder = RuntimeEnvBuilder::new();
    if let Some(limit) = limit {
        let top = std::num::NonZeroUsize::new(5).expect("5 is not zero");
        builder = builder.with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            top,
        )));
    }
    builder.build_arc().map_err(|source| SqlError::Execution {
        source: Box::new(source),
    })
}

/// `8G`, `512m`, `1.5G`, `1048576`: bytes (binary units).
fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], t[i..].trim_end_matches(['b', 'B', 'i'])),
        None => (t, ""),
    };
    let scale: f64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value > 0.0).then_some((value * scale) as usize)
}

/// The machine's memory (Linux `/proc/meminfo`), if known.
fn total_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Tables a session loads at once when it opens.
const TABLES_AT_ONCE: usize = 8;

/// A query session over a lake.
pub struct SqlSession {
    ctx: SessionContext,
    /// The datasets registered, kept current by [`SqlSession::refresh`].
    tables: std::sync::RwLock<Vec<DatasetRef>>,
    options: SessionOptions,
}

impl SqlSession {
    /// Registers every dataset of `lake` (as `layer.table`) in a new session.
    ///
    /// With a workspace, each name resolves to a view that holds only that workspace's rows;
    /// the unfiltered tables are not reachable from the session at all. With `as_of`, each
    /// table is read at that version (tables without it are left out) or time (tables created
    /// later are left out).
    pub async fn open(lake: &Lake, options: &SessionOptions) -> Result<Self> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("datafusion", "public");
        let ctx = SessionContext::new_with_config_rt(config, runtime()?);
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| SqlError::Execution {
                source: Box::new(DataFusionError::Internal("default catalog missing".into())),
            })?;
        for layer in Layer::ALL {
            catalog
                .register_schema(layer.as_str(), Arc::new(MemorySchemaProvider::new()))
                .map_err(|source| SqlError::Execution {
                    source: Box::new(source),
                })?;
        }
        // SQL helpers; `stage_normalize` maps by the seeds' stage_mappings.csv (issue 5).
        let udf_seeds = match &options.seeds {
            Some(dir) => super::udf::UdfSeeds::load(dir)?,
            None => super::udf::UdfSeeds::default(),
        };
        super::udf::register_with(&ctx, &udf_seeds);
        if let Some(dir) = &options.seeds {
            register_seeds(&ctx, dir).await?;
        }
        let session = Self {
            ctx,
            tables: std::sync::RwLock::new(Vec::new()),
            options: options.clone(),
        };
        // Tables load a few at a time (each reads its Delta log): one after the other, opening
        // a session of a 45-table lake took about 0.5 s, paid by every command and by each
        // step of a webhook batch. Registered in the lake's order.
        let datasets = lake.datasets().await?;
        // (The futures are built first: a closure inside the stream's type would make the
        // session's future not `Send` for the spawned tasks that open one.)
        let loads: Vec<_> = datasets
            .iter()
            .map(|d| Box::pin(session.provider(lake, d)))
            .collect();
        let providers: Vec<Option<Arc<dyn TableProvider>>> = futures::stream::iter(loads)
            .buffered(TABLES_AT_ONCE)
            .try_collect()
            .await?;
        for (dataset, provider) in datasets.iter().zip(providers) {
            if let Some(provider) = provider {
                session.register(dataset, provider)?;
            }
        }
        Ok(session)
    }

    /// (Re-)registers `dataset` at its latest version (or the session's `as_of`), so a session
    /// that outlives a write sees it; a dataset without a version at `as_of` is left out.
    pub async fn refresh(&self, lake: &Lake, dataset: &DatasetRef) -> Result<()> {
        match self.provider(lake, dataset).await? {
            Some(provider) => self.register(dataset, provider),
            None => Ok(()),
        }
    }

    /// The table provider of `dataset` as this session reads it (its workspace's rows, at its
    /// `as_of`); `None` when the dataset has no version at `as_of`.
    async fn provider(
        &self,
        lake: &Lake,
        dataset: &DatasetRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = match lake.load(dataset, self.options.as_of.as_ref()).await {
            Ok(t) => t,
            Err(LakeError::NoSuchVersion { .. } | LakeError::NoVersionAtTime { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        table
            .update_datafusion_session(&self.ctx.state())
            .map_err(|source| lake.delta_err("register", dataset, source))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|source| SqlError::Execution {
                source: Box::new(source),
            })?;
        let provider = match &self.options.workspace {
            Some(ws) => scoped(dataset, provider, ws)?,
            None => provider,
        };
        Ok(Some(provider))
    }

    /// Makes every declared source readable (see [`super::sources`]): a declared table the
    /// session does not have is registered as an empty table of its declared columns (all
    /// `Utf8`, `_synced_at` a timestamp), and one that lacks some declared columns reads them
    /// as null `Utf8`.
    pub async fn register_sources(&self, sources: &[super::sources::SourceTable]) -> Result<()> {
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        use datafusion::datasource::MemTable;
        use datafusion::scalar::ScalarValue;

        let known = self.tables();
        for source in sources {
            let dataset = &source.dataset;
            if known.contains(dataset) {
                let provider = self
                    .ctx
                    .table_provider(dataset.to_string().as_str())
                    .await
                    .map_err(|source| SqlError::Execution {
                        source: Box::new(source),
                    })?;
                let schema = provider.schema();
                let missing: Vec<&str> = source
                    .all_columns()
                    .into_iter()
                    .filter(|c| schema.field_with_name(c).is_err())
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let mut exprs: Vec<datafusion::prelude::Expr> = schema
                    .fields()
                    .iter()
                    .map(|f| datafusion::prelude::Expr::Column(Column::new_unqualified(f.name())))
                    .collect();
                exprs.extend(
                    missing
                        .iter()
                        .map(|c| lit(ScalarValue::Utf8(None)).alias(*c)),
                );
                let plan = LogicalPlanBuilder::scan(
                    dataset.to_string(),
                    provider_as_source(provider),
                    None,
                )
                .and_then(|b| b.project(exprs))
                .and_then(|b| b.build())
                .map_err(|source| SqlError::Execution {
                    source: Box::new(source),
                })?;
                self.register(dataset, Arc::new(ViewTable::new(plan, None)))?;
            } else {
                let fields: Vec<Field> = source
                    .all_columns()
                    .into_iter()
                    .map(|c| match c {
                        "_synced_at" => Field::new(
                            c,
                            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                            true,
                        ),
                        _ => Field::new(c, DataType::Utf8, true),
                    })
                    .collect();
                let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![Vec::new()])
                    .map_err(|source| SqlError::Execution {
                        source: Box::new(source),
                    })?;
                tracing::debug!(dataset = %dataset, "declared source not in the lake: read as empty");
                self.register(dataset, Arc::new(empty))?;
            }
        }
        Ok(())
    }

    /// Registers `sql` as the view `dataset` (a model materialized as a view).
    pub async fn register_view(&self, dataset: &DatasetRef, sql: &str) -> Result<()> {
        let plan = self
            .query(sql)
            .await?
            .into_optimized_plan()
            .map_err(|source| SqlError::Execution {
                source: Box::new(source),
            })?;
        self.register(
            dataset,
            Arc::new(ViewTable::new(plan, Some(sql.to_string()))),
        )
    }

    fn register(&self, dataset: &DatasetRef, provider: Arc<dyn TableProvider>) -> Result<()> {
        let schema = self
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema(dataset.layer.as_str()))
            .ok_or_else(|| SqlError::Execution {
                source: Box::new(DataFusionError::Internal(format!(
                    "schema {} missing",
                    dataset.layer.as_str()
                ))),
            })?;
        let replace = |e| SqlError::Execution {
            source: Box::new(e),
        };
        schema.deregister_table(&dataset.table).map_err(replace)?;
        schema
            .register_table(dataset.table.clone(), provider)
            .map_err(replace)?;
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        if !tables.contains(dataset) {
            tables.push(dataset.clone());
        }
        Ok(())
    }

    /// Makes `dataset` unreachable from this session (a table users must not query, such as
    /// `ops.api_keys`); a dataset the session does not have is left as it is.
    pub fn hide(&self, dataset: &DatasetRef) -> Result<()> {
        if let Some(schema) = self
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema(dataset.layer.as_str()))
        {
            schema
                .deregister_table(&dataset.table)
                .map_err(|source| SqlError::Execution {
                    source: Box::new(source),
                })?;
        }
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        tables.retain(|t| t != dataset);
        Ok(())
    }

    /// The datasets visible in this session.
    pub fn tables(&self) -> Vec<DatasetRef> {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Plans one read-only statement; refuses DDL, DML, settings and file reads.
    pub async fn query(&self, sql: &str) -> Result<DataFrame> {
        check_read_only(sql)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        self.ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| self.classify(e))
    }

    /// Turns a planning error into an unknown-table error where that is what it is.
    fn classify(&self, e: DataFusionError) -> SqlError {
        let message = e.to_string();
        if let Some(table) = unknown_table(&message) {
            return SqlError::UnknownTable {
                table,
                known: self.tables().iter().map(|t| t.to_string()).collect(),
            };
        }
        match e {
            DataFusionError::SQL(..) => SqlError::Parse { message },
            source => SqlError::Plan {
                source: Box::new(source),
            },
        }
    }
}

/// Registers each `*.csv` of `dir` as `seeds.<stem>` (a missing folder registers nothing).
async fn register_seeds(ctx: &SessionContext, dir: &std::path::Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| SqlError::Execution {
            source: Box::new(DataFusionError::Internal("default catalog missing".into())),
        })?;
    catalog
        .register_schema("seeds", Arc::new(MemorySchemaProvider::new()))
        .map_err(|source| SqlError::Execution {
            source: Box::new(source),
        })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort();
    for path in paths {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        ctx.register_csv(
            format!("seeds.{stem}"),
            path.to_string_lossy().as_ref(),
            datafusion::prelude::CsvReadOptions::new().has_header(true),
        )
        .await
        .map_err(|source| SqlError::Seed {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// A view of `provider` holding only `workspace`'s rows.
fn scoped(
    dataset: &DatasetRef,
    provider: Arc<dyn TableProvider>,
    workspace: &WorkspaceId,
) -> Result<Arc<dyn TableProvider>> {
    let plan = LogicalPlanBuilder::scan(dataset.to_string(), provider_as_source(provider), None)
        .and_then(|b| {
            b.filter(
                datafusion::prelude::Expr::Column(Column::new_unqualified(WORKSPACE_COLUMN))
                    .eq(lit(workspace.as_str())),
            )
        })
        .and_then(|b| b.build())
        .map_err(|source| SqlError::Execution {
            source: Box::new(source),
        })?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// The table name in DataFusion's "table '...' not found" message.
fn unknown_table(message: &str) -> Option<String> {
    let start = message.find("table '")? + "table '".len();
    let rest = &message[start..];
    let end = rest.find('\'')?;
    if !rest[end..].contains("not found") {
        return None;
    }
    let name = &rest[..end];
    Some(
        name.strip_prefix("datafusion.")
            .unwrap_or(name)
            .trim_start_matches("public.")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn memory_sizes_parse_with_binary_units_and_bad_ones_are_refused() {
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("8G"), Some(8 << 30));
        assert_eq!(parse_bytes(" 2gib "), Some(2 << 30));
        assert_eq!(parse_bytes("1.5K"), Some(1536));
        for bad in ["", "G", "-1G", "0", "8X", "eight"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }
}
