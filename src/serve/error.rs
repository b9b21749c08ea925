//! Errors of the server: [`ServeError`] for the library calls (keys, binding, serving) and
//! [`ApiError`], the JSON error every failed request is answered with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::lake::LakeError;
use crate::simulate::SimulateError;
use crate::sql::SqlError;

/// What can go wrong managing keys or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `keys revoke` named a key that `ops.api_keys` does not hold (user input).
    #[error("no API key `{key_id}` in ops.api_keys (see `revlake keys list`)")]
    NoSuchKey { key_id: String },
    /// `keys revoke` named a key revoked before (user input).
    #[error("API key `{key_id}` was already revoked at {revoked_at}")]
    AlreadyRevoked { key_id: String, revoked_at: String },
    /// A row of `ops.api_keys` lacks a column or has another type (the table was edited).
    #[error("ops.api_keys: {reason}")]
    BadKeyTable { reason: String },
    /// A setting of `revlake serve` is out of range (user input).
    #[error("invalid server setting {setting}: {reason}")]
    BadSetting {
        setting: &'static str,
        reason: String,
    },
    /// The address could not be bound (in use, not local, no permission).
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The server stopped on an I/O error.
    #[error("serving on {addr}: {source}")]
    Serve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Sql(#[from] SqlError),
}

impl ServeError {
    /// Whether the error is the user's input rather than the system's.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            ServeError::NoSuchKey { .. }
                | ServeError::AlreadyRevoked { .. }
                | ServeError::BadSetting { .. }
        )
    }
}

/// The server module's result type.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// The body of every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code and a sentence naming what was wrong and where.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `not_found`, `bad_request`, `bad_json`, `bad_sql`, `rate_limited`, ...
    pub code: String,
    pub message: String,
}

/// An error answered to a client: a status, a code and a message that never carries data of
/// another workspace nor internal details (those go to the log).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The same answer whether the thing is missing or belongs to another workspace.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} `{id}` not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests with this key: retry in {retry_after} s"),
            )
        }
    }

    /// A failure of the server or the lake: logged whole, answered without detail.
    pub fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::error!(context, error = %error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed on the server; the server log has the cause"),
        )
    }

    /// An error of a query the server wrote itself (not the client's SQL).
    pub fn from_sql(context: &str, e: SqlError) -> Self {
        Self::internal(context, &e)
    }

    /// An error of the client's own SQL: its message names the problem in the client's query;
    /// anything else is the server's.
    pub fn from_user_sql(e: SqlError) -> Self {
        if e.is_user_error() {
            Self::bad_request("bad_sql", e.to_string())
        } else {
            Self::internal("running the query", &e)
        }
    }

    /// A simulation error: the client's input, the workspace's state, or the server's fault.
    /// Messages that would list other workspaces are replaced.
    pub fn from_simulate(context: &str, e: SimulateError) -> Self {
        match &e {
            SimulateError::NoSuchDeal { deal, .. } => Self::not_found("open deal", deal),
            SimulateError::NoSuchWorkspace { .. } => Self::conflict(
                "no_deals",
                "the workspace has no deals in staging.deals: land and transform its data first",
            ),
            SimulateError::NoMinedModel { .. } => Self::conflict(
                "not_mined",
                "the workspace's stage history is not mined yet: run `revlake mine` for it first",
            ),
            SimulateError::BadScenario { .. }
            | SimulateError::ScenarioNotApplicable { .. }
            | SimulateError::InvalidConfig { .. } => {
                Self::bad_request("bad_scenario", e.to_string())
            }
            _ => Self::internal(context, &e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"revlake\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_such_workspace_never_lists_the_other_workspaces() {
        let e = SimulateError::NoSuchWorkspace {
            workspace: "acme".into(),
            known: "globex, initech".into(),
        };
        let api = ApiError::from_simulate("forecasting", e);
        assert_eq!(api.status, StatusCode::CONFLICT);
        assert!(!api.message.contains("globex"), "{}", api.message);
    }

    #[test]
    fn rate_limited_answers_carry_retry_after() {
        let response = ApiError::rate_limited(7).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
