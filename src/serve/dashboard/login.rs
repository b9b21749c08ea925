//! Logging in to the dashboard: `GET /login` shows a form, `POST /login` checks the key and keeps
//! it in an HttpOnly, SameSite=Strict cookie, `POST /logout` drops it.
//!
//! For tools that cannot send headers nor fill a form (a headless browser in a test), a key
//! holder can ask `POST /login/link` (with `Authorization: Bearer`) for a one-time link: a random
//! token that `GET /login?token=...` exchanges for the cookie once, within [`LINK_TTL`]. The key
//! itself never appears in a URL.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::render::{PageError, page, with_headers};
use super::viewer::{check, presented_key};
use crate::serve::state::AppState;

/// The cookie that holds the key.
pub const COOKIE: &str = "revlake_key";
/// How long a login cookie lasts.
const COOKIE_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// How long a one-time login link may wait to be used.
pub const LINK_TTL: Duration = Duration::from_secs(60);
/// The most unused links kept at once (older ones are dropped first).
const MAX_LINKS: usize = 1_000;

struct Pending {
    key: String,
    at: Instant,
}

/// Unused one-time links: token → the key it stands for.
static LINKS: LazyLock<Mutex<HashMap<String, Pending>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn set_cookie(key: &str) -> String {
    format!(
        "{COOKIE}={key}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        COOKIE_MAX_AGE.as_secs()
    )
}

/// The header that removes the login cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Where to go after logging in: a path of this site, else `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// A form post from another site (login CSRF) is refused: when a browser names the origin, it
/// must be this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host.is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
}

fn logged_in(key: &str, next: &str) -> Response {
    let mut response = Redirect::to(next).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(key)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    with_headers(response)
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    token: Option<String>,
}

/// The login form, or the exchange of a one-time link for the cookie.
pub async fn form(Query(q): Query<LoginQuery>) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    if let Some(token) = q.token {
        let pending = {
            let mut links = LINKS.lock().unwrap_or_else(|p| p.into_inner());
            links.retain(|_, p| p.at.elapsed() < LINK_TTL);
            links.remove(&token)
        };
        return match pending {
            Some(p) => Ok(logged_in(&p.key, &next)),
            None => Err(PageError::new(
                StatusCode::UNAUTHORIZED,
                "Login link expired",
                "This login link was used already or is older than a minute: ask for a new one, \
                 or log in with your key.",
            )),
        };
    }
    page(
        "login.html",
        context! { next => next, error => None::<String> },
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    key: String,
    next: Option<String>,
}

/// Checks the key and keeps it in the cookie.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !same_origin(&headers) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Refused",
            "The login form was posted from another site.",
        ));
    }
    let next = safe_next(f.next.as_deref());
    let key = f.key.trim();
    match check(&state, key).await {
        Ok(principal) => {
            tracing::info!(key_id = %principal.key_id, workspace = %principal.workspace, "dashboard login");
            Ok(logged_in(key, &next))
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let mut response = page("login.html", context! { next => next, error => e.message })?;
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// Drops the cookie.
pub async fn logout(headers: HeaderMap) -> Result<Response, PageError> {
    if !same_origin(&headers) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Refused",
            "The logout form was posted from another site.",
        ));
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(with_headers(response))
}

/// A one-time login link for the bearer's key: `{"url": "/login?token=...", "expires_in": 60}`.
pub async fn link(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    // Only a bearer key: a cookie (a browser) has no use for a link.
    if headers.get(header::AUTHORIZATION).is_none() {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "Not logged in",
            "Ask for a login link with `Authorization: Bearer <key>`.",
        ));
    }
    let key = presented_key(&headers).unwrap_or_default();
    let principal = check(&state, &key).await?;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = hex::encode(bytes);
    {
        let mut links = LINKS.lock().unwrap_or_else(|p| p.into_inner());
        links.retain(|_, p| p.at.elapsed() < LINK_TTL);
        if links.len() >= MAX_LINKS
            && let Some(oldest) = links
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(t, _)| t.clone())
        {
            links.remove(&oldest);
        }
        links.insert(
            token.clone(),
            Pending {
                key,
                at: Instant::now(),
            },
        );
    }
    tracing::info!(key_id = %principal.key_id, "one-time dashboard login link issued");
    let body = serde_json::json!({
        "url": format!("/login?token={token}"),
        "expires_in": LINK_TTL.as_secs(),
    });
    Ok(with_headers(axum::Json(body).into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/deals/x?y=1")), "/deals/x?y=1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "", "x"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn a_form_from_another_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        assert!(set_cookie("rlk_x").contains("HttpOnly; SameSite=Strict"));
    }
}
