//! Re-forecasting the deals a webhook batch changed, as the batch's simulation stage would.
//!
//! The deals are found in the rebuilt `staging.deals` by (source, source_id), simulated in one
//! pass ([`forecast_workspace_deals`]: one load of the mined model) and merged into
//! `marts.deal_forecasts` on (workspace_id, deal_id). A deal that is no longer open (closed by
//! the change) is not simulated, and its row is deleted: the batch rewrites the workspace's rows
//! with the open deals only, so a closed deal has none.
//!
//! The runs, seed and months are those of the `[stages.simulation]` of the jobs that run for the
//! workspace (the first by job name when several disagree, with a warning at start); without
//! such a job, the stage's defaults, which a job's bare `[stages.simulation]` also uses. A
//! workspace the batch has not simulated yet (no `marts.deal_forecasts`, no mined model) is left
//! alone: webhooks refresh forecasts, they do not start them.

use std::collections::BTreeSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use datafusion::prelude::{col, lit};

use super::apply::read_table;
use super::events::Crm;
use crate::jobs::config::SimulationStage;
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::project::Project;
use crate::simulate::forecast::{DEAL_FORECASTS, ForecastOptions, forecast_workspace_deals};
use crate::simulate::{SimConfig, SimulateError};

/// The simulation settings of a workspace's webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSettings {
    pub runs: u32,
    pub seed: u64,
    pub months: u32,
    /// Where they come from (a job file, or the defaults).
    pub from: String,
}

/// The settings of the `[stages.simulation]` of the jobs running for `workspace`.
pub fn settings(project: &Project, workspace: &WorkspaceId) -> SimSettings {
    let mut found: Vec<(&str, &SimulationStage)> = project
        .jobs
        .values()
        .filter_map(|j| {
            let stage = j.file.stages.simulation.as_ref()?;
            j.default_workspaces(&project.pipelines)
                .contains(workspace)
                .then_some((j.name.as_str(), stage))
        })
        .collect();
    found.sort_by_key(|(name, _)| *name);
    let Some((first, stage)) = found.first() else {
        let d = SimulationStage::default();
        return SimSettings {
            runs: d.runs,
            seed: d.seed,
            months: d.months,
            from: "the [stages.simulation] defaults (no job simulates the workspace)".into(),
        };
    };
    let key = |s: &SimulationStage| (s.runs, s.seed, s.months);
    let others: Vec<String> = found[1..]
        .iter()
        .filter(|(_, s)| key(s) != key(stage))
        .map(|(n, s)| {
            format!(
                "{n} (runs {}, seed {}, months {})",
                s.runs, s.seed, s.months
            )
        })
        .collect();
    if !others.is_empty() {
        tracing::warn!(
            workspace = %workspace,
            used = *first,
            differing = %others.join(", "),
            "jobs simulate the workspace with different settings: webhooks use the first job's"
        );
    }
    SimSettings {
        runs: stage.runs,
        seed: stage.seed,
        months: stage.months,
        from: format!("job {first}"),
    }
}

/// What re-forecasting did.
#[derive(Debug, Default, PartialEq)]
pub struct Resimulated {
    /// Deals simulated and merged.
    pub forecast: usize,
    /// Rows deleted: deals no longer open.
    pub removed: usize,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The staging ids of `deals`, and whether each is closed.
async fn staging_ids(
    lake: &Lake,
    workspace: &WorkspaceId,
    deals: &[(Crm, String)],
) -> Result<Vec<(String, bool)>, String> {
    let mut by_source: Vec<String> = Vec::new();
    for crm in [Crm::Hubspot, Crm::Salesforce] {
        let ids: Vec<String> = deals
            .iter()
            .filter(|(c, _)| *c == crm)
            .map(|(_, id)| quote(id))
            .collect();
        if !ids.is_empty() {
            by_source.push(format!(
                "(source = {} AND source_id IN ({}))",
                quote(crm.as_str()),
                ids.join(", ")
            ));
        }
    }
    let sql = format!(
        "SELECT CAST(id AS VARCHAR) AS id, coalesce(CAST(is_closed AS BOOLEAN), false) AS closed \
         FROM t WHERE workspace_id = {} AND ({})",
        quote(workspace.as_str()),
        by_source.join(" OR ")
    );
    let Some((_, batches)) = read_table(lake, "staging.deals", &sql).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for b in &batches {
        // (DataFusion may hand text back as views: cast to plain arrays.)
        let ids = arrow::compute::cast(b.column(0), &DataType::Utf8).map_err(|e| e.to_string())?;
        let ids = ids.as_string::<i32>();
        let closed = b.column(1).as_boolean();
        for r in 0..b.num_rows() {
            if !ids.is_null(r) {
                out.push((
                    ids.value(r).to_string(),
                    !closed.is_null(r) && closed.value(r),
                ));
            }
        }
    }
    Ok(out)
}

/// Re-forecasts `deals` (CRM, source id) of `workspace` into `marts.deal_forecasts`, deleting
/// the rows of those no longer open.
pub async fn resimulate(
    lake: &Lake,
    project: &Project,
    workspace: &WorkspaceId,
    settings: &SimSettings,
    deals: &[(Crm, String)],
) -> Result<Resimulated, String> {
    let dataset: DatasetRef = DEAL_FORECASTS
        .parse()
        .map_err(|e| format!("{DEAL_FORECASTS}: {e}"))?;
    let Some(table) = lake.try_load(&dataset).await.map_err(|e| e.to_string())? else {
        tracing::debug!(workspace = %workspace, "no {DEAL_FORECASTS} yet: nothing to re-forecast");
        return Ok(Resimulated::default());
    };
    let ids = staging_ids(lake, workspace, deals).await?;
    if ids.is_empty() {
        return Ok(Resimulated::default());
    }
    let wanted: BTreeSet<String> = ids
        .iter()
        .filter(|(_, closed)| !closed)
        .map(|(id, _)| id.clone())
        .collect();
    let mut simulated = BTreeSet::new();
    let mut done = Resimulated::default();
    if !wanted.is_empty() {
        let options = ForecastOptions {
            config: SimConfig {
                runs: settings.runs,
                seed: settings.seed,
                ..SimConfig::default()
            },
            as_of: None,
            months: settings.months,
            deal: None,
        };
        match forecast_workspace_deals(lake, workspace, &wanted, &options).await {
            Ok(f) => {
                for s in &f.skipped {
                    tracing::info!(workspace = %workspace, deal = %s.deal_id, reason = %s.reason, "deal not re-forecast");
                }
                if !f.deals.is_empty() {
                    f.write(lake, project.schema(&dataset))
                        .await
                        .map_err(|e| format!("merging into {DEAL_FORECASTS}: {e}"))?;
                }
                simulated.extend(f.deals.iter().map(|d| d.deal_id.clone()));
                done.forecast = f.deals.len();
            }
            Err(
                e @ (SimulateError::NoMinedModel { .. } | SimulateError::NoSuchWorkspace { .. }),
            ) => {
                tracing::warn!(workspace = %workspace, reason = %e, "deals not re-forecast");
                return Ok(done);
            }
            Err(e) => return Err(format!("re-forecasting {} deals: {e}", wanted.len())),
        }
    }
    // The batch keeps rows of open, simulated deals only.
    let stale: Vec<String> = ids
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !simulated.contains(id))
        .collect();
    if !stale.is_empty() {
        let predicate = col("workspace_id")
            .eq(lit(workspace.as_str()))
            .and(col("deal_id").in_list(stale.iter().map(|s| lit(s.as_str())).collect(), false));
        let (_, metrics) = table
            .delete()
            .with_predicate(predicate)
            .await
            .map_err(|e| format!("deleting closed deals from {DEAL_FORECASTS}: {e}"))?;
        done.removed = metrics.num_deleted_rows.unwrap_or(stale.len());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(jobs: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
        std::fs::write(
            dir.path().join("pipelines/default.toml"),
            "workspace = \"demo\"\n",
        )
        .unwrap();
        for (name, text) in jobs {
            std::fs::write(dir.path().join(format!("jobs/{name}.toml")), text).unwrap();
        }
        let p = Project::load(dir.path()).unwrap();
        (dir, p)
    }

    #[test]
    fn settings_come_from_the_jobs_that_simulate_the_workspace() {
        let ws = WorkspaceId::new("demo").unwrap();
        let (_d, p) = project(&[]);
        let s = settings(&p, &ws);
        assert_eq!((s.runs, s.seed, s.months), (10_000, 0, 12));
        assert!(s.from.contains("defaults"));

        let (_d, p) = project(&[
            ("b_daily", "[stages.simulation]\nruns = 3000\nseed = 9\n"),
            (
                "a_hourly",
                "[stages.simulation]\nruns = 500\nseed = 4\nmonths = 6\n",
            ),
            ("c_other", "[stages.mining]\n"),
        ]);
        let s = settings(&p, &ws);
        assert_eq!((s.runs, s.seed, s.months), (500, 4, 6));
        assert_eq!(s.from, "job a_hourly");

        // A job for another workspace does not count.
        let (_d, p) = project(&[(
            "elsewhere",
            "workspaces = [\"acme\"]\n[stages.simulation]\nruns = 7\n",
        )]);
        assert_eq!(settings(&p, &ws).runs, 10_000);
        assert_eq!(settings(&p, &WorkspaceId::new("acme").unwrap()).runs, 7);
    }
}
