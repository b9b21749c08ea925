//! Authentication and rate limiting of `/api`: every request names a key with
//! `Authorization: Bearer <key>`; a valid key's [`Principal`] goes to the handlers, which scope
//! everything to its workspace; each key has its own request budget (429 with `Retry-After`).
//!
//! Requests without a valid key (no header, an unknown or revoked key) and the public routes
//! spend a budget of their client address instead ([`AppState::ip_limiter`]): a flood of bad
//! keys is answered 429 without touching the budgets of valid keys, which never spend it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;

use super::error::ApiError;
use super::keys::{Principal, Verdict};
use super::state::AppState;

/// The bearer token of a request, if it has one.
fn bearer(request: &Request) -> Result<&str, ApiError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("no Authorization header: send `Authorization: Bearer <key>`")
        })?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII text"))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not `Bearer <key>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(format!(
            "the Authorization scheme is `{scheme}`, not Bearer"
        )));
    }
    Ok(token.trim())
}

/// The middleware in front of every `/api` route but the OpenAPI document.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = match bearer(&request) {
        Ok(t) => t.to_string(),
        Err(e) => return anonymous_limit(&state, &request).unwrap_or_else(|| e.into_response()),
    };
    let principal = match check(&state, &token).await {
        Ok(p) => p,
        Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => {
            return anonymous_limit(&state, &request).unwrap_or_else(|| e.into_response());
        }
        Err(e) => return e.into_response(),
    };
    let span = tracing::Span::current();
    span.record("key_id", principal.key_id.as_str());
    span.record("workspace", principal.workspace.as_str());
    if let Err(not_until) = state.limiter.check_key(&principal.key_id) {
        let wait = not_until.wait_time_from(state.limiter.clock().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::warn!(key_id = %principal.key_id, retry_after = seconds, "rate limited");
        return ApiError::rate_limited(seconds.max(1)).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

async fn check(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let verdict = state
        .keys
        .verify(token)
        .await
        .map_err(|e| ApiError::internal("checking the API key", &e))?;
    match verdict {
        Verdict::Valid(p) => Ok(p),
        Verdict::Revoked { key_id } => {
            tracing::warn!(key_id, "revoked key used");
            Err(ApiError::unauthorized("the API key was revoked"))
        }
        Verdict::Unknown => Err(ApiError::unauthorized("the API key is not valid")),
    }
}

/// The client address of a request (served with connect info); unspecified when the router is
/// called without it (in-process tests), which then share one budget.
fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Spends one request of the client address's budget; the 429 when it is spent.
fn anonymous_limit(state: &AppState, request: &Request) -> Option<Response> {
    let ip = client_ip(request);
    let not_until = state.ip_limiter.check_key(&ip).err()?;
    let wait = not_until.wait_time_from(state.ip_limiter.clock().now());
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    tracing::warn!(client = %ip, retry_after = seconds, "unauthenticated requests rate limited");
    let mut error = ApiError::rate_limited(seconds);
    error.message =
        format!("too many requests without a valid key from this address: retry in {seconds} s");
    Some(error.into_response())
}

/// The middleware in front of the public routes: every request spends the client address's
/// budget.
pub async fn limit_public(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match anonymous_limit(&state, &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}
