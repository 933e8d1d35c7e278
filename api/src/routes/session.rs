//! Who the caller is: what a client (the console) needs to know before it offers actions
//! its token may not take. The API refuses them anyway; this only spares the offer.

use axum::{Extension, Json};
use serde::Serialize;

use crate::auth::Principal;

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// `role#n`: which configured token this is (`anonymous` without authentication).
    pub principal: String,
    /// `read`, `write` or `admin`; each includes the ones before it.
    pub access: &'static str,
}

#[utoipa::path(
    get,
    path = "/v1/session",
    tag = "operations",
    summary = "The caller's principal and access",
    description = "Which token the request came with and what it may do. Any valid token may ask; without authentication (`--insecure-no-auth`) every caller is an anonymous admin.",
    responses(
        (status = 200, description = "The caller", body = SessionView),
        (status = 401, description = "`unauthorized`: no token, or not one of ours", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn session(Extension(principal): Extension<Principal>) -> Json<SessionView> {
    Json(SessionView { principal: principal.label, access: principal.access.as_str() })
}
