use std::process::ExitCode;

use anyhow::Result;
use chrono::Utc;
use revlake::jobs::doctor::{Level, doctor};
use revlake::jobs::schedule::parse_duration;
use revlake::jobs::status::freshness;

use super::Global;

/// Show the freshness of every dataset (its last successful refresh, from the Delta log) and
/// flag the stale ones. Exits 1 when a dataset is stale.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake status\n  revlake status --stale-after 2h\n  revlake status --json --lake s3://acme-lake/prod"
)]
pub struct StatusArgs {
    /// A dataset last refreshed longer ago than this is stale (ops.* logs never are).
    #[arg(long, default_value = "26h", value_name = "DURATION")]
    stale_after: String,
    #[arg(long)]
    json: bool,
}

/// Check the setup and say what is wrong and how to fix it: the project's files parse,
/// credential variables are set, the lake is reachable and writable, seeds are valid CSV, every
/// job's schedule has a next run. Exits 1 when something failed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake doctor\n  revlake doctor --project ./acme --lake s3://acme-lake/prod\n  revlake doctor --json"
)]
pub struct DoctorArgs {
    #[arg(long)]
    json: bool,
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub async fn status(global: &Global, args: StatusArgs) -> Result<ExitCode> {
    let stale_after = parse_duration(&args.stale_after).map_err(anyhow::Error::msg)?;
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let rows = freshness(&lake, Utc::now(), stale_after).await?;
    let stale = rows.iter().filter(|r| r.stale).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("the lake {} has no datasets yet", lake.url());
    } else {
        println!(
            "{:<40} {:>8} {:>12} {:<22} {:>8}",
            "dataset", "version", "rows", "last refresh (UTC)", "age"
        );
        for r in &rows {
            println!(
                "{:<40} {:>8} {:>12} {:<22} {:>8}{}",
                r.dataset,
                r.version,
                r.rows,
                r.last_commit
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into()),
                r.age_seconds.map(age).unwrap_or_else(|| "-".into()),
                if r.stale { "  STALE" } else { "" }
            );
        }
        println!(
            "{} datasets, {stale} stale (older than {})",
            rows.len(),
            args.stale_after
        );
    }
    Ok(if stale > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn doctor_cmd(global: &Global, args: DoctorArgs) -> Result<ExitCode> {
    let findings = doctor(&global.project, global.lake.as_deref()).await;
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let tag = match f.level {
                Level::Ok => "ok  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{tag} {:<12} {}", f.area, f.message);
            if let Some(fix) = &f.fix {
                println!("     {:<12} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            if failed == 0 {
                "no problem found".to_string()
            } else {
                format!("{failed} problem(s) found")
            }
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
