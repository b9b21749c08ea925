//! `revlake serve`: the HTTP API over the lake (axum on hyper 1).
//!
//! Every `/api` route but the OpenAPI document needs `Authorization: Bearer <key>` (keys per
//! workspace, [`keys`]); a request sees only its key's workspace: deal ids of another workspace
//! answer 404 exactly as missing ones do, and queries run in sessions whose tables are views of
//! the workspace's rows ([`AppState::session`]). Each key has a request budget (429 with
//! `Retry-After`), bodies are capped (413), CORS headers are never sent (browsers on other
//! origins are refused by default), and each request gets a tracing span with its method, route,
//! key id and workspace.
//!
//! ```text
//! client ─▶ TraceLayer (span) ─▶ body limit ─▶ /api/openapi.json
//!                                           └▶ auth (key → workspace, rate limit) ─▶ handler
//!                                                 └▶ SqlSession scoped to the workspace / simulate
//! ```
//!
//! The OpenAPI document is generated from the same handler annotations the router is built
//! from ([`openapi`]), so a route cannot be served without being documented, nor the reverse.

pub mod auth;
pub mod dashboard;
pub mod data;
mod error;
pub mod extract;
pub mod import;
pub mod jobs;
pub mod keys;
pub mod queue;
pub mod rows;
pub mod simulate;
pub mod sql;
mod state;
pub mod webhooks;

use std::future::Future;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody, ErrorDetail, Result, ServeError};
pub use keys::{ApiKeyRecord, CreatedKey, Principal, create_key, list_keys, revoke_key};
pub use state::{AppState, ServeConfig};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "revlake API",
        description = "Deals, scores, alerts, quality results, read-only SQL and simulations over one workspace of a revlake lake. Every operation but this document needs `Authorization: Bearer <key>` (`revlake keys create`).",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "data", description = "Deals, alerts, quality results, the sales roster"),
        (name = "sql", description = "Read-only SQL over the workspace"),
        (name = "simulation", description = "What-ifs and forecasts on the mined stage chain"),
        (name = "imports", description = "Vendor connections, their syncs, file uploads and background jobs"),
        (name = "meta", description = "This document"),
        (name = "webhooks", description = "Signed webhook receivers (no API key): HubSpot, Stripe, Salesforce, generic"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A key from `revlake keys create` (rlk_...)"))
                    .build(),
            ),
        );
    }
}

type AppRouter = OpenApiRouter<Arc<AppState>>;

/// The routes that need a key.
fn protected() -> AppRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(data::list_deals))
        .routes(routes!(data::get_deal))
        .routes(routes!(simulate::deal_forecast))
        .routes(routes!(data::list_alerts))
        .routes(routes!(data::quality))
        .routes(routes!(sql::run_sql))
        .routes(routes!(data::sales_roster))
        .routes(routes!(simulate::simulate))
        .routes(routes!(simulate::pipeline))
        .routes(routes!(import::connect))
        .routes(routes!(import::sync))
        .routes(routes!(import::status))
        .routes(routes!(import::files::apply_upload))
        .routes(routes!(jobs::get_job))
}

/// The routes that need a key and take bodies up to `--max-upload`.
fn uploads() -> AppRouter {
    OpenApiRouter::new().routes(routes!(import::files::upload))
}

/// The routes open to anyone.
fn public() -> AppRouter {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// The webhook receivers: open, authenticated by the vendor's signature. They do not spend the
/// per-address budget of the other open routes: a vendor delivers bursts from a few addresses,
/// and a request without a valid signature costs one HMAC before it is refused.
fn webhook_routes() -> AppRouter {
    OpenApiRouter::new()
        .routes(routes!(webhooks::hubspot))
        .routes(routes!(webhooks::stripe))
        .routes(routes!(webhooks::salesforce))
        .routes(routes!(webhooks::generic))
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
    protected()
        .merge(public())
        .merge(webhook_routes())
        .merge(uploads())
        .into_openapi()
});

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    DOCUMENT.clone()
}

/// This API's OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    axum::Json(&*DOCUMENT).into_response()
}

/// The whole application: routes, authentication, body limit, request spans.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.config.max_body_bytes;
    let (protected, _) = protected().split_for_parts();
    let protected = protected.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    let (public, _) = public().split_for_parts();
    let public = public.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::limit_public,
    ));
    let max_upload = usize::try_from(state.config.max_upload_bytes).unwrap_or(usize::MAX);
    let (uploads, _) = uploads().split_for_parts();
    let uploads = uploads
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_upload))
        .layer(RequestBodyLimitLayer::new(max_upload));
    let (webhook_routes, _) = webhook_routes().split_for_parts();
    protected
        .merge(public)
        .merge(webhook_routes)
        .merge(dashboard::router())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        .merge(uploads)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route (see /api/openapi.json)",
            )
        })
        .layer(middleware::from_fn(json_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        key_id = tracing::field::Empty,
                        workspace = tracing::field::Empty,
                    )
                })
                .on_response(
                    |response: &Response, latency: std::time::Duration, _: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            latency_ms = latency.as_millis() as u64,
                            "answered"
                        );
                    },
                ),
        )
        .with_state(state)
}

/// Gives the answers of layers below the handlers (the body limit's 413) the JSON error body.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return extract::too_large().into_response();
    }
    response
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    tracing::info!(addr, "serving");
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|source| ServeError::Serve {
        addr: addr.clone(),
        source,
    })?;
    tracing::info!(addr, "stopped");
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("interrupt: shutting down"),
        _ = terminate => tracing::info!("terminate: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_every_route_and_only_those() {
        let doc = openapi();
        let mut documented: Vec<String> = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ] {
                if op.is_some() {
                    documented.push(format!("{method} {path}"));
                }
            }
        }
        documented.sort();
        let mut expected = vec![
            "GET /api/alerts",
            "GET /api/deals",
            "GET /api/deals/{id}",
            "GET /api/deals/{id}/forecast",
            "GET /api/forecast",
            "GET /api/openapi.json",
            "GET /api/quality",
            "GET /api/workspaces/{id}/sales-roster",
            "POST /api/import/connect",
            "POST /api/import/sync/{connection_id}",
            "GET /api/import/status/{connection_id}",
            "POST /api/import/files",
            "POST /api/import/files/{upload_id}/apply",
            "GET /api/jobs/{id}",
            "POST /api/simulate",
            "POST /api/sql",
            "POST /api/webhooks/{workspace}/generic",
            "POST /api/webhooks/{workspace}/hubspot",
            "POST /api/webhooks/{workspace}/salesforce",
            "POST /api/webhooks/{workspace}/stripe",
        ];
        expected.sort();
        assert_eq!(documented, expected);
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["components"]["securitySchemes"]["api_key"].is_object());
        // The document itself is open; everything else needs the key.
        assert_eq!(
            json["paths"]["/api/openapi.json"]["get"]["security"],
            serde_json::json!([{}])
        );
    }
}
