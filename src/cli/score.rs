use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::lake::WorkspaceId;
use revlake::scoring::{
    Decision, Method, Schemas, ScoreOptions, ScoreReport, TrainOptions, score_workspace,
};

use super::Global;
use super::simulate::print_table;

/// Score the open deals: deal risk (0–100), velocity, engagement, health and the top risk
/// factors, plus insight alerts.
///
/// The risk model is a logistic regression (L2-regularized, fitted by IRLS on standardized
/// features) trained on closed deals: one row per stage a deal went through, with the features
/// as they were known then (days in stage and pace against the segment's medians, amount,
/// champion / blocker, engagement, the lead source, segment, industry and rep win rates among
/// deals closed before). The latest quarter of closed deals (by close time) is held out:
/// ROC-AUC, log-loss and a calibration table are reported and stored with the model in
/// marts.risk_models. A new model that is worse on the holdout than the active one is stored
/// but not activated unless --force. With too few closed deals, transparent rules score the
/// deals instead (the output and marts.deal_scores say so). A deal's simulated p_win
/// (marts.deal_forecasts, revlake simulate) is averaged in on the log-odds scale.
///
/// Writes marts.deal_scores, marts.alerts (an unchanged alert keeps its id and is not new
/// again) and, after training, marts.risk_models.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake score\n  revlake score --train --workspace demo\n  revlake score --train --force --export-features /tmp/features\n  revlake score --digest digest.html\n  revlake score --bench 100000"
)]
pub struct ScoreArgs {
    /// The workspace (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Train a new model (default: use the active one, training only when there is none).
    #[arg(long)]
    train: bool,
    /// Activate the new model even when the active one is better on the new holdout.
    #[arg(long, requires = "train")]
    force: bool,
    /// L2 strength on the standardized coefficients (scikit-learn's C = 1 / L2).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    l2: f64,
    /// Share of closed deals, the latest by close time, held out.
    #[arg(long, value_name = "SHARE", default_value_t = 0.25)]
    holdout: f64,
    /// Write the training features (train.csv, test.csv) into this folder when training.
    #[arg(long, value_name = "DIR")]
    export_features: Option<PathBuf>,
    /// Write the weekly executive digest (self-contained HTML) here.
    #[arg(long, value_name = "FILE")]
    digest: Option<PathBuf>,
    /// Deals printed, riskiest first (0: none).
    #[arg(long, value_name = "N", default_value_t = 10)]
    limit: usize,
    /// Print only; write no marts.
    #[arg(long)]
    no_write: bool,
    /// Benchmark: time the scoring of N synthetic deals in memory (no lake) and exit.
    #[arg(long, value_name = "N", conflicts_with_all = ["train", "digest", "export_features"])]
    bench: Option<usize>,
}

pub async fn run(global: &Global, args: ScoreArgs) -> Result<ExitCode> {
    if let Some(n) = args.bench {
        return bench(n).await;
    }
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = match &args.workspace {
        Some(w) => WorkspaceId::new(w)?,
        None => super::run::default_workspace(&project)?,
    };
    let options = ScoreOptions {
        train: args.train,
        force: args.force,
        training: TrainOptions {
            l2: args.l2,
            holdout_share: args.holdout,
            ..TrainOptions::default()
        },
        export_features: args.export_features.clone(),
        no_write: args.no_write,
        ..ScoreOptions::default()
    };
    let report = score_workspace(
        &lake,
        &Schemas::from_project(&project),
        &workspace,
        &options,
    )
    .await
    .with_context(|| format!("scoring the open deals of workspace {workspace}"))?;
    print_report(&report, args.limit);
    if let Some(dir) = &args.export_features
        && report.training.is_some()
    {
        eprintln!("wrote train.csv and test.csv to {}", dir.display());
    }
    if let Some(path) = &args.digest {
        std::fs::write(path, report.digest_html())
            .with_context(|| format!("writing the digest to {}", path.display()))?;
        eprintln!("wrote the weekly digest to {}", path.display());
    }
    for (dataset, o) in &report.written {
        eprintln!("wrote {} rows to {dataset} (version {})", o.rows, o.version);
    }
    // New insight alerts go out through the pipeline's alert channels (quality issue routing).
    if !args.no_write {
        let alerts = revlake::alerts::scoring_alerts(workspace.as_str(), &report.new_alerts());
        super::check::route(&lake, &project, alerts).await;
        let written: Vec<revlake::lake::DatasetRef> = report
            .written
            .iter()
            .filter_map(|(d, _)| d.to_string().parse().ok())
            .collect();
        let blocked =
            super::check::after_stage(&lake, &project, &written, Some(&workspace)).await?;
        return Ok(super::check::exit_after(blocked));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &ScoreReport, limit: usize) {
    if !r.missing.is_empty() {
        println!(
            "note: missing tables read as empty: {}",
            r.missing.join(", ")
        );
    }
    if let Some(t) = &r.training {
        let m = &t.model;
        println!(
            "trained risk model version {} on {} rows ({} closed deals); holdout: {} rows ({} deals closed from {})",
            m.version,
            m.metrics.train_rows,
            m.metrics.train_deals,
            m.metrics.test_rows,
            m.metrics.test_deals,
            revlake::scoring::trends::utc(m.holdout_from).format("%Y-%m-%d")
        );
        println!(
            "  holdout ROC-AUC {:.4}, log-loss {:.4}, within-stage AUC {}, train AUC {}, base rate {:.1}%",
            m.metrics.auc,
            m.metrics.log_loss,
            m.metrics
                .within_stage_auc
                .map_or("-".into(), |a| format!("{a:.4}")),
            m.metrics
                .train_auc
                .map_or("-".into(), |a| format!("{a:.4}")),
            100.0 * m.metrics.base_rate
        );
        println!("  calibration (holdout, deciles of predicted p_win):");
        let rows: Vec<Vec<String>> = m
            .metrics
            .calibration
            .iter()
            .map(|b| {
                vec![
                    b.decile.to_string(),
                    b.count.to_string(),
                    format!("{:.3}", b.mean_predicted),
                    format!("{:.3}", b.observed_rate),
                ]
            })
            .collect();
        print_table(&["decile", "rows", "predicted", "observed"], &rows);
        let mut coefs: Vec<(&String, f64)> = m
            .features
            .iter()
            .zip(m.logistic.coefficients.iter().copied())
            .collect();
        coefs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        println!("  coefficients (standardized, log-odds of winning):");
        let rows: Vec<Vec<String>> = coefs
            .iter()
            .map(|(n, c)| vec![n.to_string(), format!("{c:+.4}")])
            .collect();
        print_table(&["feature", "coefficient"], &rows);
        match &t.decision {
            Decision::Kept { .. } => {
                println!("NOT activated: {} (the active model keeps scoring)", m.note)
            }
            Decision::Forced { .. } => println!("activated (forced): {}", m.note),
            _ => println!("activated: {}", m.note),
        }
    }
    if let Some(reason) = &r.training_skipped {
        println!("no model trained: {reason}");
    }
    match &r.method {
        Method::Model { version } => println!(
            "scored {} open deals of workspace {} as of {} with risk model version {version}",
            r.scores.len(),
            r.workspace,
            r.as_of.format("%Y-%m-%d %H:%M UTC")
        ),
        Method::Rules { reason } => println!(
            "scored {} open deals of workspace {} as of {} with RULE-BASED scoring (fallback: {reason})",
            r.scores.len(),
            r.workspace,
            r.as_of.format("%Y-%m-%d %H:%M UTC")
        ),
    }
    if r.skipped > 0 {
        println!(
            "{} open deals with an unmapped stage were not scored",
            r.skipped
        );
    }
    if limit > 0 && !r.scores.is_empty() {
        let mut top: Vec<_> = r.scores.iter().collect();
        top.sort_by(|a, b| {
            b.deal_risk
                .cmp(&a.deal_risk)
                .then(a.deal_id.cmp(&b.deal_id))
        });
        let rows: Vec<Vec<String>> = top
            .iter()
            .take(limit)
            .map(|s| {
                vec![
                    s.deal_name.clone(),
                    s.stage.clone(),
                    s.deal_risk.to_string(),
                    s.health_score.to_string(),
                    format!("{:+.2}", s.velocity_score),
                    format!("{:.0}", s.engagement_score),
                    s.factors.first().map_or(String::new(), |f| f.text.clone()),
                ]
            })
            .collect();
        print_table(
            &[
                "deal",
                "stage",
                "risk",
                "health",
                "velocity",
                "engagement",
                "top factor",
            ],
            &rows,
        );
    }
    if let Some(h) = &r.health {
        println!("pipeline health index: {:.0}/100", h.index);
    }
    let new = r.new_alerts();
    let open = r.alerts.iter().filter(|a| a.status == "open").count();
    println!("alerts: {open} open, {} new in this run", new.len());
    for a in new.iter().take(10) {
        println!("  [{}] {} → {}", a.severity, a.title, a.audience);
    }
}

async fn bench(n: usize) -> Result<ExitCode> {
    anyhow::ensure!(n >= 1, "--bench needs at least 1 deal");
    let t = tokio::task::spawn_blocking(move || revlake::scoring::bench::run(n, 7))
        .await?
        .context("running the scoring benchmark")?;
    println!(
        "revlake score --bench: {} synthetic deals ({} open)",
        t.deals, t.open
    );
    println!("  build inputs      {:>8.3}s", t.build);
    println!("  medians and rates {:>8.3}s", t.references);
    println!(
        "  train             {:>8.3}s  ({} rows, holdout AUC {})",
        t.train,
        t.training_rows,
        t.auc.map_or("-".into(), |a| format!("{a:.3}"))
    );
    println!(
        "  score open deals  {:>8.3}s  ({:.0} deals/s)",
        t.score,
        t.open as f64 / t.score.max(1e-9)
    );
    println!("  trends and alerts {:>8.3}s", t.alerts);
    if let Some(rss) = super::bench::peak_rss_mb() {
        println!("  peak RSS of this process: {rss:.0} MB");
    }
    Ok(ExitCode::SUCCESS)
}
