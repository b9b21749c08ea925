//! The pipeline dashboard of `revlake serve`: server-rendered HTML pages over the same lake, keys
//! and handlers as the JSON API, with no JavaScript and nothing loaded from another origin.
//!
//! | page | shows | reads |
//! | --- | --- | --- |
//! | `/` | pipeline health index, forecast distribution, win-rate trends by segment | [`crate::scoring::trends`], `marts.pipeline_forecast`, `marts.deal_forecasts`, `staging.deals` |
//! | `/pipeline` | open deals by stage and risk band, the rep table, the riskiest deals | `staging.deals`, `marts.deal_scores`, `staging.users` |
//! | `/deals/{id}` | score factors, stage history, stakeholders, simulated scenarios | the handlers of `GET /api/deals/{id}` and `/api/deals/{id}/forecast` |
//! | `/quality` | latest check results, freshness of every dataset with staleness warnings | the handler of `GET /api/quality`, [`crate::jobs::status::freshness`] |
//!
//! A viewer is a workspace key ([`viewer`]): sent as `Authorization: Bearer <key>` or kept in an
//! HttpOnly, SameSite=Strict cookie set by `POST /login`; every page is scoped to the key's
//! workspace exactly as the API is (another workspace's deal is a 404). A page whose data is
//! not computed yet says which table is missing and which command writes it.
//!
//! The routes are HTML, not API: they are merged into the router beside the `/api` routes and
//! are not in the OpenAPI document.

mod charts;
mod deal;
mod executive;
mod format;
mod login;
mod pipeline;
mod quality;
mod render;
mod viewer;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::state::AppState;

pub use login::{COOKIE, LINK_TTL};
pub use render::PageError;
pub use viewer::Viewer;

/// The dashboard's routes (HTML pages, the login form and the one-time login link).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(executive::page))
        .route("/pipeline", get(pipeline::page))
        .route("/deals/{id}", get(deal::page))
        .route("/quality", get(quality::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/login/link", post(login::link))
        .route("/logout", post(login::logout))
}

/// What a section of a page lacks, and the command that produces it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Missing {
    /// What is not there: "marts.deal_scores".
    pub what: String,
    /// The command that writes it: "revlake score".
    pub command: String,
}

impl Missing {
    pub fn new(what: &str, command: &str) -> Self {
        Self {
            what: what.to_string(),
            command: command.to_string(),
        }
    }
}
