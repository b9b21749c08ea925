//! `revlake doctor`: what is wrong with a setup and how to fix it: the project parses,
//! credential variables are set, the lake is reachable and writable, seeds are valid CSV,
//! every scheduled job has a next run.

use std::path::Path;

use chrono::Utc;
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;

use crate::lake::Lake;
use crate::project::Project;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One thing checked.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// project, credentials, lake, seeds, jobs.
    pub area: &'static str,
    pub level: Level,
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(area: &'static str, message: impl Into<String>) -> Self {
        Self {
            area,
            level: Level::Ok,
            message: message.into(),
            fix: None,
        }
    }

    fn bad(
        area: &'static str,
        level: Level,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            area,
            level,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Checks the project at `root` and the lake at `lake` (the project's default when `None`).
pub async fn doctor(root: &Path, lake: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    let project = match Project::load(root) {
        Ok(p) => {
            out.push(Finding::ok(
                "project",
                format!(
                    "{}: {} schemas, {} pipelines, {} jobs parse",
                    root.display(),
                    p.schemas.len(),
                    p.pipelines.len(),
                    p.jobs.len()
                ),
            ));
            Some(p)
        }
        Err(e) => {
            out.push(Finding::bad(
                "project",
                Level::Fail,
                e.to_string(),
                "edit the file named above (each error names its file and line), then run `revlake doctor` again",
            ));
            None
        }
    };
    if let Some(p) = &project {
        credentials(p, &mut out);
        jobs(p, &mut out);
    }
    let location = lake
        .map(str::to_string)
        .or_else(|| project.as_ref().map(|p| p.default_lake()))
        .unwrap_or_else(|| root.join("datasets/lake").display().to_string());
    out.push(check_lake(&location).await);
    seeds(&root.join("datasets/seeds"), &mut out);
    out
}

fn credentials(project: &Project, out: &mut Vec<Finding>) {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for p in project.pipelines.values() {
        for c in p.file.connections.values() {
            for (what, var) in &c.credentials {
                wanted.push((
                    var.clone(),
                    format!("{} connection {} ({what})", p.path.display(), c.name),
                ));
            }
        }
        for (name, ch) in &p.file.alerts.channels {
            use crate::alerts::ChannelConfig;
            let vars: Vec<&String> = match ch {
                ChannelConfig::Slack { webhook_url_env } => vec![webhook_url_env],
                ChannelConfig::Webhook { secret_env, .. } => secret_env.iter().collect(),
                ChannelConfig::Email {
                    username_env,
                    password_env,
                    ..
                } => username_env.iter().chain(password_env.iter()).collect(),
                ChannelConfig::Pagerduty {
                    routing_key_env, ..
                } => vec![routing_key_env],
            };
            for v in vars {
                wanted.push((
                    v.clone(),
                    format!("{} alert channel {name}", p.path.display()),
                ));
            }
        }
    }
    if wanted.is_empty() {
        out.push(Finding::ok(
            "credentials",
            "no connection or alert channel needs a credential",
        ));
        return;
    }
    let mut missing = 0;
    for (var, whose) in &wanted {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            missing += 1;
            out.push(Finding::bad(
                "credentials",
                Level::Fail,
                format!("${var} is not set ({whose})"),
                format!("export {var}=... in the scheduler's environment (the value never goes in a file)"),
            ));
        }
    }
    if missing == 0 {
        out.push(Finding::ok(
            "credentials",
            format!("{} credential variables set", wanted.len()),
        ));
    }
}

fn jobs(project: &Project, out: &mut Vec<Finding>) {
    let now = Utc::now();
    for job in project.jobs.values() {
        if let Some(s) = &job.schedule
            && s.next_after(now).is_none()
        {
            out.push(Finding::bad(
                "jobs",
                Level::Warn,
                format!("{}: schedule `{}` never runs", job.path.display(), s.text()),
                "fix the day/month fields (e.g. `0 0 30 2 *` is February 30th)",
            ));
        }
    }
    if !out.iter().any(|f| f.area == "jobs") {
        out.push(Finding::ok(
            "jobs",
            format!("{} jobs, each schedule has a next run", project.jobs.len()),
        ));
    }
}

async fn check_lake(location: &str) -> Finding {
    let lake = match Lake::open(location).await {
        Ok(l) => l,
        Err(e) => {
            return Finding::bad(
                "lake",
                Level::Fail,
                e.to_string(),
                "check the URL (--lake / REVLAKE_LAKE / the pipeline's `lake`) and the cloud credentials in the environment (AWS_*, GOOGLE_*, AZURE_*)",
            );
        }
    };
    let store = match lake.root_store() {
        Ok(s) => s,
        Err(e) => return Finding::bad("lake", Level::Fail, e.to_string(), "check the lake URL"),
    };
    let probe = object_store::path::Path::from(format!(
        "_revlake/doctor/{}.probe",
        uuid::Uuid::new_v4().simple()
    ));
    let result = async {
        store
            .put(&probe, PutPayload::from_static(b"revlake doctor"))
            .await?;
        let back = store.get(&probe).await?.bytes().await?;
        store.delete(&probe).await?;
        Ok::<_, object_store::Error>(back.as_ref() == b"revlake doctor")
    }
    .await;
    match result {
        Ok(true) => Finding::ok("lake", format!("{} is reachable and writable", lake.url())),
        Ok(false) => Finding::bad(
            "lake",
            Level::Fail,
            format!("{}: a written probe read back different bytes", lake.url()),
            "check the store's consistency settings or proxy",
        ),
        Err(e) => Finding::bad(
            "lake",
            Level::Fail,
            format!("{} is not writable: {e}", lake.url()),
            "grant write access to the lake's prefix (bucket policy, IAM role or folder permissions)",
        ),
    }
}

fn seeds(dir: &Path, out: &mut Vec<Finding>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push(Finding::ok(
                "seeds",
                format!("no seed folder {}", dir.display()),
            ));
            return;
        }
        Err(e) => {
            out.push(Finding::bad(
                "seeds",
                Level::Fail,
                format!("{}: {e}", dir.display()),
                "check the folder's permissions",
            ));
            return;
        }
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut bad = 0;
    for path in &files {
        let problem = match csv::Reader::from_path(path) {
            Err(e) => Some(e.to_string()),
            Ok(mut r) => match r.headers() {
                Err(e) => Some(e.to_string()),
                Ok(h) if h.is_empty() || h.iter().any(|c| c.trim().is_empty()) => {
                    Some("the header row has an empty column name".into())
                }
                Ok(_) => r.records().find_map(|rec| rec.err().map(|e| e.to_string())),
            },
        };
        if let Some(p) = problem {
            bad += 1;
            out.push(Finding::bad(
                "seeds",
                Level::Fail,
                format!("{}: {p}", path.display()),
                "make every row have as many fields as the header (quote values holding commas)",
            ));
        }
    }
    if bad == 0 {
        out.push(Finding::ok(
            "seeds",
            format!("{} seed files are valid CSV", files.len()),
        ));
    }
}
