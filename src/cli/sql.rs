use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use revlake::lake::{AsOf, WorkspaceId};
use revlake::sql::{Format, SessionOptions, SqlSession, output};

use super::Global;

/// Run one read-only SQL query over the lake's datasets (named layer.table).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake sql \"SELECT stage, count(*) AS deals FROM staging.deals GROUP BY stage\"\n  revlake sql -f report.sql --workspace acme --format csv --output report.csv\n  revlake sql \"SELECT count(*) FROM raw.salesforce_opportunity\" --as-of 2025-06-30T00:00:00Z"
)]
pub struct SqlArgs {
    /// The query (one SELECT / WITH / VALUES / EXPLAIN statement).
    #[arg(value_name = "QUERY", conflicts_with = "file")]
    query: Option<String>,
    /// Read the query from a file.
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// See only this workspace's rows, in every table.
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Read every table as of a Delta version or an RFC 3339 timestamp (or a date).
    #[arg(long, value_name = "VERSION|TIMESTAMP")]
    as_of: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the result to this file instead of stdout (written whole or not at all).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
}

pub async fn run(global: &Global, args: SqlArgs) -> Result<ExitCode> {
    let text = match (&args.query, &args.file) {
        (Some(q), None) => q.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the query file {}", f.display()))?,
        _ => bail!("give a query or --file FILE (see revlake sql --help)"),
    };
    let workspace = args
        .workspace
        .as_deref()
        .map(WorkspaceId::new)
        .transpose()?;
    let as_of = args.as_of.as_deref().map(str::parse::<AsOf>).transpose()?;
    if args.format == Format::Parquet && args.output.is_none() {
        bail!("--format parquet needs --output PATH");
    }
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let options = SessionOptions {
        workspace,
        as_of,
        seeds: Some(project.seeds_dir()),
    };
    let session = SqlSession::open(&lake, &options).await?;
    let df = session.query(&text).await?;
    match &args.output {
        Some(path) => {
            let rows = output::write_result_to_file(df, args.format, path).await?;
            eprintln!("wrote {rows} rows to {}", path.display());
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            output::write_result(df, args.format, &mut out).await?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
