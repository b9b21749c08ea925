//! The templates (HTML autoescaped: every value from the lake is escaped; only the server's own
//! SVG charts are marked safe), the response headers every page carries, and the HTML error
//! page.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

use super::format;
use crate::serve::error::ApiError;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("message.html", include_str!("templates/message.html")),
    ("executive.html", include_str!("templates/executive.html")),
    ("pipeline.html", include_str!("templates/pipeline.html")),
    ("deal.html", include_str!("templates/deal.html")),
    ("quality.html", include_str!("templates/quality.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    format::register(&mut env);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .expect("the dashboard templates are part of the binary and parse");
    }
    env
});

/// A serializable value for a template.
pub fn val<T: serde::Serialize>(v: T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// Renders template `name` with `ctx` into an HTML answer with the page headers.
pub fn page(name: &str, ctx: Value) -> Result<Response, PageError> {
    let html = ENV
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| {
            tracing::error!(template = name, error = %e, "rendering a dashboard page failed");
            PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered",
                "rendering the page failed on the server; the server log has the cause",
            )
        })?;
    Ok(with_headers(Html(html).into_response()))
}

/// The headers of every dashboard answer: no script may run, nothing is loaded from elsewhere,
/// no page is cached, framed or sent as a referrer.
pub fn with_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page that could not be shown: its status and what to tell the viewer.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.to_string(),
            message: message.into(),
        }
    }

    /// A failure of the server: logged whole, shown without detail.
    pub fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        ApiError::internal(context, error).into()
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let title = match e.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            StatusCode::UNAUTHORIZED => "Not logged in",
            s if s.is_server_error() => "Something went wrong",
            _ => "Not available",
        };
        Self::new(e.status, title, e.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let rendered = ENV.get_template("message.html").and_then(|t| {
            t.render(context! { title => &self.title, message => &self.message, status => self.status.as_u16() })
        });
        let mut response = match rendered {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "rendering the error page failed");
                (self.status, self.message).into_response()
            }
        };
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        with_headers(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_values_are_escaped() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
        let e = PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "deal `<script>x</script>` not found",
        );
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(
            response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
    }
}
