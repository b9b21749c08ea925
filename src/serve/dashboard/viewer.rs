//! Who is looking: the workspace key of a dashboard request, from `Authorization: Bearer` or the
//! login cookie, checked and rate limited exactly as the API's keys are. No key sends the
//! browser to `/login`; a bad one answers 401 and drops the cookie.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use governor::clock::Clock;

use super::login::{COOKIE, clear_cookie};
use super::render::{PageError, with_headers};
use crate::serve::keys::{Principal, Verdict};
use crate::serve::state::AppState;

/// A request's checked key: every page reads only this workspace.
#[derive(Debug, Clone)]
pub struct Viewer(pub Principal);

/// The key a request carries: the bearer token first, else the login cookie.
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
    {
        return Some(token);
    }
    cookie(headers, COOKIE)
}

/// The value of cookie `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// What a presented key is: the principal, or the 401 page to show.
pub async fn check(state: &AppState, key: &str) -> Result<Principal, PageError> {
    let verdict = state
        .keys
        .verify(key)
        .await
        .map_err(|e| PageError::internal("checking the API key", &e))?;
    match verdict {
        Verdict::Valid(p) => Ok(p),
        Verdict::Revoked { key_id } => {
            tracing::warn!(key_id, "revoked key used on the dashboard");
            Err(unauthorized(
                "The key was revoked: log in with another key.",
            ))
        }
        Verdict::Unknown => Err(unauthorized(
            "The key is not valid: log in with a key from `revlake keys create`.",
        )),
    }
}

fn unauthorized(message: &str) -> PageError {
    PageError::new(StatusCode::UNAUTHORIZED, "Not logged in", message)
}

/// `/login?next=<path>` for the page asked.
fn login_redirect(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let target = if next == "/" {
        "/login".to_string()
    } else {
        format!("/login?next={}", percent_encode(&next))
    };
    with_headers(Redirect::to(&target).into_response())
}

/// Encodes everything but unreserved characters and `/`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(key) = presented_key(&parts.headers) else {
            return Err(login_redirect(parts));
        };
        let principal = match check(state, &key).await {
            Ok(p) => p,
            Err(e) => {
                let mut response = e.into_response();
                if let Ok(v) = HeaderValue::from_str(&clear_cookie()) {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
                return Err(response);
            }
        };
        let span = tracing::Span::current();
        span.record("key_id", principal.key_id.as_str());
        span.record("workspace", principal.workspace.as_str());
        if let Err(not_until) = state.limiter.check_key(&principal.key_id) {
            let wait = not_until.wait_time_from(state.limiter.clock().now());
            tracing::warn!(key_id = %principal.key_id, wait_ms = wait.as_millis() as u64, "rate limited");
            return Err(PageError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                format!(
                    "Too many requests with this key: retry in {} s.",
                    wait.as_secs().max(1)
                ),
            )
            .into_response());
        }
        Ok(Viewer(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_from_the_bearer_header_before_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; revlake_key=rlk_cookie"),
        );
        assert_eq!(presented_key(&h).as_deref(), Some("rlk_cookie"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer rlk_header"),
        );
        assert_eq!(presented_key(&h).as_deref(), Some("rlk_header"));
        let mut empty = HeaderMap::new();
        empty.insert(header::COOKIE, HeaderValue::from_static("revlake_key="));
        assert_eq!(presented_key(&empty), None);
        assert_eq!(percent_encode("/deals/a b?x=1"), "/deals/a%20b%3Fx%3D1");
    }
}
