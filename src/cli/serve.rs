use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use revlake::lake::WorkspaceId;
use revlake::serve::{
    AppState, ServeConfig, create_key, list_keys, revoke_key, serve, shutdown_signal,
};

use super::Global;
use super::simulate::print_table;

/// Serve the HTTP API over the lake: deals, scores, alerts, quality, read-only SQL, simulations.
///
/// Every /api request needs `Authorization: Bearer <key>` (see `revlake keys create`) and sees
/// only its key's workspace. The OpenAPI document is at /api/openapi.json. Stops on Ctrl-C or
/// SIGTERM after finishing the requests in flight.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake serve\n  revlake serve --addr 0.0.0.0:8080 --rate-limit 120 --burst 20\n  revlake serve --max-upload 5000000000 --anonymous-rate-limit 30\n  curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8080/api/deals?status=open&limit=10"
)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    addr: String,
    /// Requests per minute each key may make, sustained.
    #[arg(long, default_value_t = 600, value_name = "N")]
    rate_limit: u32,
    /// Requests a key may make at once above the sustained rate.
    #[arg(long, default_value_t = 60, value_name = "N")]
    burst: u32,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    max_body: usize,
    /// Longest a POST /api/sql query may run, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    sql_timeout: f64,
    /// Most rows a POST /api/sql answer holds.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    sql_max_rows: usize,
    /// Most runs a simulation or forecast request may ask for (at most 20000).
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    max_simulations: u32,
    /// Simulations and forecasts run at once.
    #[arg(long, default_value_t = 2, value_name = "N")]
    concurrent_simulations: usize,
    /// Largest file POST /api/import/files accepts, in bytes (default 1 GiB).
    #[arg(long, default_value_t = 1024 * 1024 * 1024, value_name = "BYTES")]
    max_upload: u64,
    /// Let POST /api/import/connect set a connection's base_url (a proxy, a sandbox); off, the
    /// server talks only to the vendors' public APIs.
    #[arg(long)]
    allow_connection_base_url: bool,
    /// Background syncs run at once (others wait, queued).
    #[arg(long, default_value_t = 2, value_name = "N")]
    concurrent_jobs: usize,
    /// Requests per minute each client address may make without a valid key, sustained.
    #[arg(long, default_value_t = 120, value_name = "N")]
    anonymous_rate_limit: u32,
    /// Requests a client address may make at once without a valid key above that rate.
    #[arg(long, default_value_t = 60, value_name = "N")]
    anonymous_burst: u32,
}

pub async fn run(global: &Global, args: ServeArgs) -> Result<ExitCode> {
    if !(args.sql_timeout.is_finite() && args.sql_timeout > 0.0) {
        anyhow::bail!(
            "--sql-timeout {} must be a positive number of seconds",
            args.sql_timeout
        );
    }
    let config = ServeConfig {
        requests_per_minute: args.rate_limit,
        burst: args.burst,
        max_body_bytes: args.max_body,
        sql_timeout: Duration::from_secs_f64(args.sql_timeout),
        sql_max_rows: args.sql_max_rows,
        max_simulations: args.max_simulations,
        concurrent_simulations: args.concurrent_simulations,
        project_root: Some(global.project.clone()),
        max_upload_bytes: args.max_upload,
        allow_connection_base_url: args.allow_connection_base_url,
        concurrent_jobs: args.concurrent_jobs,
        anonymous_per_minute: args.anonymous_rate_limit,
        anonymous_burst: args.anonymous_burst,
        ..ServeConfig::default()
    };
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let state = AppState::new(lake.clone(), config)?;
    let hooks =
        revlake::serve::webhooks::Webhooks::start(&lake, std::sync::Arc::new(project.clone()))
            .await
            .context("starting the webhook receivers (ops.webhook_events)")?;
    let _ = state.webhooks.set(hooks);
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    println!(
        "revlake serve: listening on http://{local} (lake {})",
        lake.url()
    );
    serve(listener, state, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Manage the API keys of `revlake serve` (stored hashed in ops.api_keys).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake keys create --workspace acme --name dashboard\n  revlake keys list\n  revlake keys revoke key_3f9a0c1d2e4b5a69"
)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create a key for a workspace; the key is printed once, only its hash is stored.
    Create {
        /// The workspace every request with the key is scoped to.
        #[arg(long, value_name = "W")]
        workspace: String,
        /// A label: who or what uses the key.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// List the keys (ids, workspaces, names, dates; never the keys).
    List,
    /// Revoke a key by its id: requests with it get 401 from then on.
    Revoke {
        /// The key id (key_...), as `revlake keys list` shows it.
        #[arg(value_name = "ID")]
        id: String,
    },
}

pub async fn keys(global: &Global, args: KeysArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    match args.command {
        KeysCommand::Create { workspace, name } => {
            let workspace = WorkspaceId::new(&workspace)?;
            let created = create_key(&lake, &workspace, name.as_deref())
                .await
                .with_context(|| format!("creating a key for workspace {workspace}"))?;
            println!("{}", created.secret);
            eprintln!(
                "created {} for workspace {workspace}: the key above is shown only now; store it as a secret",
                created.record.key_id
            );
        }
        KeysCommand::List => {
            let keys = list_keys(&lake).await.context("reading ops.api_keys")?;
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.key_id.clone(),
                        k.workspace_id.clone(),
                        k.name.clone().unwrap_or_default(),
                        k.created_at.clone(),
                        k.revoked_at.clone().unwrap_or_else(|| "active".into()),
                    ]
                })
                .collect();
            print_table(&["key", "workspace", "name", "created", "revoked"], &rows);
        }
        KeysCommand::Revoke { id } => {
            let record = revoke_key(&lake, &id)
                .await
                .with_context(|| format!("revoking {id}"))?;
            eprintln!(
                "revoked {} of workspace {}: a running server refuses it within seconds",
                record.key_id, record.workspace_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
