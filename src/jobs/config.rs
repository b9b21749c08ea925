//! Job files, `jobs/<name>.toml`: a pipeline, a stage selection, a cron schedule in a time
//! zone, retries, a timeout, alert routes and a missed-run policy.
//!
//! ```toml
//! description = "Opportunities and activities, hourly."
//! pipeline = "default"
//! schedule = "0 * * * *"
//! timezone = "UTC"
//! timeout = "30m"
//! missed = "skip"            # or "catch_up_once"
//! lease_margin = "1m"        # the lease outlives the timeout by this (a crashed run's lock)
//!
//! [retries]
//! attempts = 3               # tries per stage
//! backoff = "30s"            # doubles each try, up to max_backoff
//!
//! [alerts]
//! severity = "critical"      # of the alert a failed run raises
//! channels = ["pagerduty"]   # the pipeline's channels; its routes when empty
//!
//! [stages.sync]
//! streams = ["Opportunity", "OpportunityHistory", "Task", "Event", "deals", "engagements"]
//! [stages.models]
//! select = ["staging.deals+", "staging.activities+"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::schedule::{MissedPolicy, Schedule, parse_duration};
use crate::lake::WorkspaceId;
use crate::project::{Pipeline, ProjectError};
use crate::quality::Severity;

/// A job file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// What the job is for (shown by `revlake jobs`).
    #[serde(default)]
    pub description: String,
    /// The pipeline (`pipelines/<name>.toml`) whose lake, workspace, connections and alert
    /// channels the job uses.
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// Cron schedule: `minute hour day month weekday`, or six fields with seconds first.
    /// Without one the job runs only when asked (`revlake run-job`).
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Workspaces the scheduler runs the job for; the pipeline's workspace when empty.
    #[serde(default)]
    pub workspaces: Vec<String>,
    /// The longest a run may take; it is then stopped and recorded as timed out.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// How long the job's lease outlives its timeout (default: the runner's, one minute). A
    /// run holds the lease for `timeout + lease_margin`; if its process dies, others may take
    /// the job over after that.
    pub lease_margin: Option<String>,
    /// Runs missed while no scheduler was up: `skip` or `catch_up_once`.
    #[serde(default)]
    pub missed: MissedPolicy,
    #[serde(default)]
    pub retries: RetriesFile,
    #[serde(default)]
    pub alerts: JobAlertsFile,
    /// The stages to run, in the pipeline's order whatever the order here.
    #[serde(default)]
    pub stages: StagesFile,
}

fn default_pipeline() -> String {
    "default".to_string()
}

fn default_timezone() -> String {
    "UTC".to_string()
}

fn default_timeout() -> String {
    "2h".to_string()
}

/// `[retries]`: tries per stage with exponential backoff.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetriesFile {
    /// Tries per stage, the first included (1: no retry).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait before the second try; doubles after each failed try.
    #[serde(default = "default_backoff")]
    pub backoff: String,
    /// The longest wait between tries.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: String,
}

impl Default for RetriesFile {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}

fn default_backoff() -> String {
    "30s".to_string()
}

fn default_max_backoff() -> String {
    "10m".to_string()
}

/// `[alerts]`: where a failed run is reported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobAlertsFile {
    /// Severity of the alert a failed run raises.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Channels of the pipeline's `[alerts]` to send this job's alerts to; the pipeline's
    /// routes when empty.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Raise an alert when a run fails.
    #[serde(default = "yes")]
    pub on_failure: bool,
}

impl Default for JobAlertsFile {
    fn default() -> Self {
        Self {
            severity: default_severity(),
            channels: Vec::new(),
            on_failure: true,
        }
    }
}

fn default_severity() -> Severity {
    Severity::Critical
}

fn yes() -> bool {
    true
}

/// `[stages.*]`: a stage runs when its table is present (`[stages.mining]` or `mining = {}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagesFile {
    pub sync: Option<SyncStage>,
    pub land: Option<LandStage>,
    pub models: Option<ModelsStage>,
    pub checks: Option<ChecksStage>,
    pub mining: Option<MiningStage>,
    pub simulation: Option<SimulationStage>,
    pub scoring: Option<ScoringStage>,
    pub alerts: Option<AlertsStage>,
    pub report: Option<ReportStage>,
    pub exports: Option<ExportsStage>,
}

/// Sync the pipeline's API connections (incremental from the stored cursors).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncStage {
    /// Connections of the pipeline; all when empty.
    #[serde(default)]
    pub connections: Vec<String>,
    /// Streams (vendor object names, case-insensitive); each connection syncs those it has,
    /// all of its streams when empty.
    #[serde(default)]
    pub streams: Vec<String>,
    /// Ignore the cursors and re-read everything.
    #[serde(default)]
    pub full: bool,
}

/// Land a folder of vendor export files (`<dir>/<source>/<Object>.csv`) as raw tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandStage {
    /// The folder, relative to the project.
    pub dir: String,
}

/// Build the SQL models, each followed by its checks (a critical failure blocks what reads
/// the dataset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsStage {
    /// Selectors as in `revlake run --select`; all models when empty.
    #[serde(default)]
    pub select: Vec<String>,
    #[serde(default)]
    pub full_refresh: bool,
}

/// Evaluate declared checks on stored datasets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksStage {
    /// Datasets as in `revlake check --select`; all with checks when empty.
    #[serde(default)]
    pub select: Vec<String>,
    /// The lowest severity whose failure fails the stage.
    #[serde(default = "default_severity")]
    pub fail_on: Severity,
}

/// Mine the stage history into the transition marts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiningStage {}

/// Monte Carlo forecasts: per deal and for the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationStage {
    #[serde(default = "default_runs")]
    pub runs: u32,
    #[serde(default)]
    pub seed: u64,
    /// Calendar months of the horizon.
    #[serde(default = "default_months")]
    pub months: u32,
}

impl Default for SimulationStage {
    fn default() -> Self {
        Self {
            runs: default_runs(),
            seed: 0,
            months: default_months(),
        }
    }
}

fn default_runs() -> u32 {
    10_000
}

fn default_months() -> u32 {
    12
}

/// Risk scores and insight alerts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringStage {
    /// Train a new model (activated only if it beats the active one on the holdout).
    #[serde(default)]
    pub train: bool,
}

/// Deliver the alerts the run raised so far (quality, sync, scoring) through the pipeline's
/// channels. Alerts not yet delivered when a run ends are delivered then.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsStage {}

/// Write reports: the quality report and, after scoring, the executive digest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportStage {
    /// The HTML quality report, relative to the project; `{workspace}` is replaced.
    #[serde(default = "default_quality_report")]
    pub quality: String,
    /// The executive digest (HTML, needs the scoring stage), relative to the project.
    #[serde(default)]
    pub digest: Option<String>,
}

impl Default for ReportStage {
    fn default() -> Self {
        Self {
            quality: default_quality_report(),
            digest: None,
        }
    }
}

fn default_quality_report() -> String {
    "datasets/reports/quality-{workspace}.html".to_string()
}

/// Load marts into the configured warehouses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportsStage {
    /// Export targets of the pipeline; all configured ones when empty.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// Retries of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Retries {
    /// The wait after failed try `attempt` (1-based): backoff · 2^(attempt-1), capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The file name without `.toml`.
    pub name: String,
    pub path: PathBuf,
    pub file: JobFile,
    pub schedule: Option<Schedule>,
    pub timeout: Duration,
    /// `lease_margin`, when the file sets it.
    pub lease_margin: Option<Duration>,
    pub retries: Retries,
    pub workspaces: Vec<WorkspaceId>,
}

/// A job name: the file stem, letters, digits, `_` and `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Job {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProjectError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        Self::parse(&name, &text, path)
    }

    /// Validates the text of job `name` read from `path` (named in every error, with the
    /// line and key at fault).
    pub fn parse(name: &str, text: &str, path: &Path) -> Result<Self, ProjectError> {
        let err = |key: &str, message: String| ProjectError::Toml {
            path: path.to_path_buf(),
            line: line_of_key(text, key),
            message: format!("{key}: {message}"),
        };
        if !valid_name(name) {
            return Err(ProjectError::InvalidPipeline {
                path: path.to_path_buf(),
                reason: format!(
                    "`{name}` is not a job name: name the file with letters, digits, `_` or `-`"
                ),
            });
        }
        let file: JobFile = toml::from_str(text).map_err(|e| ProjectError::Toml {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| crate::project::schema::line_of(text, s.start)),
            message: e.message().trim().to_string(),
        })?;
        let schedule = match &file.schedule {
            Some(s) => Some(Schedule::parse(s, &file.timezone).map_err(|m| {
                let key = if m.contains("IANA") {
                    "timezone"
                } else {
                    "schedule"
                };
                err(key, m)
            })?),
            None => {
                // A zone without a schedule is harmless, but a bad one is still a mistake.
                if file.timezone.parse::<chrono_tz::Tz>().is_err() {
                    return Err(err(
                        "timezone",
                        format!("`{}` is not an IANA time zone name", file.timezone),
                    ));
                }
                None
            }
        };
        let timeout = parse_duration(&file.timeout).map_err(|m| err("timeout", m))?;
        if timeout.is_zero() {
            return Err(err("timeout", "must be longer than zero".into()));
        }
        let lease_margin = file
            .lease_margin
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|m| err("lease_margin", m))?;
        if file.retries.attempts == 0 {
            return Err(err("attempts", "must be at least 1 (1 = no retry)".into()));
        }
        let retries = Retries {
            attempts: file.retries.attempts,
            backoff: parse_duration(&file.retries.backoff).map_err(|m| err("backoff", m))?,
            max_backoff: parse_duration(&file.retries.max_backoff)
                .map_err(|m| err("max_backoff", m))?,
        };
        let mut workspaces = Vec::new();
        for w in &file.workspaces {
            workspaces.push(WorkspaceId::new(w).map_err(|e| err("workspaces", e.to_string()))?);
        }
        if let Some(sim) = &file.stages.simulation
            && sim.runs == 0
        {
            return Err(err("runs", "must be at least 1".into()));
        }
        if let Some(land) = &file.stages.land
            && land.dir.trim().is_empty()
        {
            return Err(err("dir", "name the folder of export files".into()));
        }
        if file.stages.is_empty() {
            return Err(ProjectError::InvalidPipeline {
                path: path.to_path_buf(),
                reason: "the job selects no stage: add at least one `[stages.<stage>]` (sync, land, models, checks, mining, simulation, scoring, alerts, report, exports)".into(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            file,
            schedule,
            timeout,
            lease_margin,
            retries,
            workspaces,
        })
    }

    /// Checks what the job names in its pipeline: the pipeline itself, sync connections and
    /// alert channels.
    pub fn validate_refs(
        &self,
        pipelines: &BTreeMap<String, Pipeline>,
    ) -> Result<(), ProjectError> {
        let invalid = |reason: String| ProjectError::InvalidPipeline {
            path: self.path.clone(),
            reason,
        };
        let Some(pipeline) = pipeline_of(pipelines, &self.file.pipeline) else {
            // The default pipeline may be absent in a bare project: the job then uses the
            // defaults (`datasets/lake`, workspace `default`).
            if self.file.pipeline == "default" && pipelines.is_empty() {
                return Ok(());
            }
            return Err(invalid(format!(
                "pipeline: no pipeline `{}` in pipelines/ (pipelines: {})",
                self.file.pipeline,
                pipelines.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        if let Some(sync) = &self.file.stages.sync {
            for c in &sync.connections {
                if !pipeline.file.connections.contains_key(c) {
                    return Err(invalid(format!(
                        "stages.sync.connections: pipeline `{}` has no connection `{c}` (connections: {})",
                        pipeline.name,
                        pipeline
                            .file
                            .connections
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        if let Some(exports) = &self.file.stages.exports {
            for t in &exports.targets {
                if !pipeline.file.exports.contains_key(t) {
                    return Err(invalid(format!(
                        "stages.exports.targets: pipeline `{}` has no export `{t}` (exports: {})",
                        pipeline.name,
                        if pipeline.file.exports.is_empty() {
                            "none".to_string()
                        } else {
                            pipeline
                                .file
                                .exports
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    )));
                }
            }
        }
        for c in &self.file.alerts.channels {
            if !pipeline.file.alerts.channels.contains_key(c) {
                return Err(invalid(format!(
                    "alerts.channels: pipeline `{}` declares no alert channel `{c}` (channels: {})",
                    pipeline.name,
                    pipeline
                        .file
                        .alerts
                        .channels
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The workspaces the scheduler runs the job for: the declared ones, else the pipeline's.
    pub fn default_workspaces(&self, pipelines: &BTreeMap<String, Pipeline>) -> Vec<WorkspaceId> {
        if !self.workspaces.is_empty() {
            return self.workspaces.clone();
        }
        let name = pipeline_of(pipelines, &self.file.pipeline)
            .map(|p| p.file.workspace.as_str())
            .unwrap_or(crate::project::DEFAULT_WORKSPACE);
        WorkspaceId::new(name).into_iter().collect()
    }

    /// The names of the selected stages, in run order.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.file.stages.names()
    }
}

/// The pipeline named `name`; `default` is also the only pipeline of a one-pipeline project.
pub fn pipeline_of<'a>(
    pipelines: &'a BTreeMap<String, Pipeline>,
    name: &str,
) -> Option<&'a Pipeline> {
    pipelines.get(name).or_else(|| {
        (name == "default" && pipelines.len() == 1)
            .then(|| pipelines.values().next())
            .flatten()
    })
}

impl StagesFile {
    fn is_empty(&self) -> bool {
        self.names().is_empty()
    }

    /// The selected stages, in run order.
    pub fn names(&self) -> Vec<&'static str> {
        let flags = [
            ("sync", self.sync.is_some()),
            ("land", self.land.is_some()),
            ("models", self.models.is_some()),
            ("checks", self.checks.is_some()),
            ("mining", self.mining.is_some()),
            ("simulation", self.simulation.is_some()),
            ("scoring", self.scoring.is_some()),
            ("alerts", self.alerts.is_some()),
            ("report", self.report.is_some()),
            ("exports", self.exports.is_some()),
        ];
        flags.into_iter().filter(|f| f.1).map(|f| f.0).collect()
    }
}

/// The 1-based line where `key = ...` (or `[...key]`) is written, if it is.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
                || (t.starts_with('[') && t.trim_end().trim_end_matches(']').ends_with(key))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Job, ProjectError> {
        Job::parse("hourly", text, Path::new("jobs/hourly.toml"))
    }

    #[test]
    fn a_full_job_file_parses() {
        let job = parse(
            r#"
description = "d"
schedule = "0 * * * *"
timezone = "Europe/Berlin"
timeout = "45m"
missed = "catch_up_once"
workspaces = ["acme"]
[retries]
attempts = 4
backoff = "10s"
max_backoff = "1m"
[alerts]
severity = "high"
[stages.sync]
streams = ["Opportunity"]
[stages.models]
select = ["staging.deals+"]
[stages.mining]
"#,
        )
        .unwrap();
        assert_eq!(job.timeout, Duration::from_secs(2700));
        assert_eq!(job.file.missed, MissedPolicy::CatchUpOnce);
        assert_eq!(job.stage_names(), ["sync", "models", "mining"]);
        assert_eq!(job.retries.delay(1), Duration::from_secs(10));
        assert_eq!(job.retries.delay(2), Duration::from_secs(20));
        assert_eq!(job.retries.delay(5), Duration::from_secs(60));
        assert_eq!(job.file.alerts.severity, Severity::High);
        assert_eq!(job.lease_margin, None);
        let job = parse("lease_margin = \"2s\"\n[stages.mining]\n").unwrap();
        assert_eq!(job.lease_margin, Some(Duration::from_secs(2)));
        let e = parse("lease_margin = \"later\"\n[stages.mining]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("jobs/hourly.toml:1: lease_margin:"), "{e}");
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = parse("schedule = \"0 * * *\"\n[stages.mining]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("jobs/hourly.toml:1: schedule:"), "{e}");
        let e = parse("schedule = \"0 * * * *\"\ntimezone = \"Nowhere/City\"\n[stages.mining]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("jobs/hourly.toml:2: timezone:"), "{e}");
        let e = parse("timeout = \"soon\"\n[stages.mining]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("jobs/hourly.toml:1: timeout:"), "{e}");
        let e = parse("[retries]\nattempts = 0\n[stages.mining]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("jobs/hourly.toml:2: attempts:"), "{e}");
        // Unknown keys are refused with their line.
        let e = parse("[stages.mining]\nfast = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("jobs/hourly.toml:2"), "{e}");
        assert!(e.contains("fast"), "{e}");
        let e = parse("[stages.minning]\n").unwrap_err().to_string();
        assert!(e.contains("minning"), "{e}");
        let e = parse("missed = \"always\"\n[stages.mining]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("jobs/hourly.toml:1"), "{e}");
        let e = parse("description = \"nothing\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("selects no stage"), "{e}");
        let e = Job::parse(
            "bad name",
            "[stages.mining]\n",
            Path::new("jobs/bad name.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("jobs/bad name.toml"), "{e}");
    }

    #[test]
    fn references_are_checked_against_the_pipeline() {
        let pipeline: crate::project::PipelineFile =
            toml::from_str("workspace = \"acme\"\n").unwrap();
        let mut pipelines = BTreeMap::new();
        pipelines.insert(
            "default".to_string(),
            Pipeline {
                name: "default".into(),
                path: "pipelines/default.toml".into(),
                file: pipeline,
            },
        );
        let job = parse("[stages.sync]\nconnections = [\"crm\"]\n").unwrap();
        let e = job.validate_refs(&pipelines).unwrap_err().to_string();
        assert!(
            e.contains("jobs/hourly.toml: stages.sync.connections"),
            "{e}"
        );
        let job = parse("[stages.exports]\ntargets = [\"sf\"]\n").unwrap();
        let e = job.validate_refs(&pipelines).unwrap_err().to_string();
        assert!(
            e.contains(
                "stages.exports.targets: pipeline `default` has no export `sf` (exports: none)"
            ),
            "{e}"
        );
        let job = parse("[alerts]\nchannels = [\"pd\"]\n[stages.mining]\n").unwrap();
        let e = job.validate_refs(&pipelines).unwrap_err().to_string();
        assert!(e.contains("alerts.channels"), "{e}");
        let job = parse("pipeline = \"eu\"\n[stages.mining]\n").unwrap();
        let e = job.validate_refs(&pipelines).unwrap_err().to_string();
        assert!(e.contains("no pipeline `eu`"), "{e}");
        let job = parse("[stages.mining]\n").unwrap();
        job.validate_refs(&pipelines).unwrap();
        assert_eq!(job.default_workspaces(&pipelines)[0].as_str(), "acme");
    }
}
