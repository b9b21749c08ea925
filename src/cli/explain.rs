use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::lake::WorkspaceId;
use revlake::scoring::{Method, explain_deal};

use super::Global;
use super::simulate::print_table;

/// Print an open deal's risk, computed fields and every risk factor, largest risk first.
///
/// Uses the active model of marts.risk_models (revlake score --train), else the transparent
/// rules. DEAL is the deal's id, its id in the source CRM, or its exact name. Reads only.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake explain 006000000000123AAA\n  revlake explain 3f2b9c1e-8d7a-5b6c-9e0f-1a2b3c4d5e6f --workspace demo"
)]
pub struct ExplainArgs {
    /// The deal: id, source id or exact name.
    deal: String,
    /// The workspace (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
}

pub async fn run(global: &Global, args: ExplainArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = match &args.workspace {
        Some(w) => WorkspaceId::new(w)?,
        None => super::run::default_workspace(&project)?,
    };
    let e = explain_deal(&lake, &workspace, &args.deal)
        .await
        .with_context(|| format!("explaining deal {} of workspace {workspace}", args.deal))?;
    let s = &e.score;
    println!("deal {} ({})", s.deal_name, s.deal_id);
    println!(
        "  stage {} for {:.0} days, segment {}, amount {}",
        s.stage,
        s.days_in_stage,
        s.segment,
        s.amount.map_or("unknown".into(), |a| format!("${a:.0}"))
    );
    println!(
        "  deal risk {}/100 ({}), p_win {:.3}{}",
        s.deal_risk,
        s.risk_band(),
        s.p_win,
        s.p_win_simulated.map_or(String::new(), |p| format!(
            " (model {:.3}, simulated {p:.3})",
            s.p_win_model
        ))
    );
    println!(
        "  health {}/100, velocity {:+.2}, engagement {:.0}/100",
        s.health_score, s.velocity_score, s.engagement_score
    );
    match &e.method {
        Method::Model { version } => println!(
            "  scored by risk model version {version} as of {}; impact = change in the log-odds of winning vs an average deal",
            e.as_of.format("%Y-%m-%d")
        ),
        Method::Rules { reason } => {
            println!("  scored by RULES ({reason}); impact = minus the risk points of the rule")
        }
    }
    println!("risk factors, largest risk first:");
    let rows: Vec<Vec<String>> = s
        .all_factors
        .iter()
        .map(|f| {
            vec![
                format!("{:+.3}", f.impact),
                f.feature.clone(),
                f.text.clone(),
            ]
        })
        .collect();
    print_table(&["impact", "factor", "detail"], &rows);
    if !s.factors.is_empty() {
        println!("recommended actions:");
        let mut seen = Vec::new();
        for f in &s.factors {
            if !seen.contains(&f.action) {
                println!("  {}. {}", seen.len() + 1, f.action);
                seen.push(f.action.clone());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
