//! The web console, served by the ledger itself at `/console`: a page for people over the
//! same API that clients use. Its assets (`console/assets/`) are compiled into the binary,
//! so a running ledger needs no network and no files beside it, and `cargo build` alone
//! makes them (plain HTML, CSS and JavaScript modules: no build step).
//!
//! Every path under `/console` that is not an asset answers the one page, whose script
//! draws the page the path names (a deep link to an order works). The page holds no data
//! of its own: it asks the API with the token the person signed in with, kept in the
//! browser's session storage, so a `read` token sees what `read` may see and the API
//! refuses anything more whatever the page shows.

use std::borrow::Cow;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The page every non-asset path under `/console` answers with.
const SHELL: &str = "index.html";

/// Nothing but this origin's own files and API; no inline script or style, so injected
/// markup (an order's payload rendered as text, say) cannot run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// The console's routes; merged into the HTTP router, they pass through its layers.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(shell))
        .route("/console/", get(shell))
        .route("/console/assets/{*path}", get(asset))
        .route("/console/{*page}", get(shell))
}

async fn shell(headers: HeaderMap) -> Response {
    serve(SHELL, &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// `path` from the assets, revalidated by its digest: a browser keeps a copy and asks
/// each time whether it is still the one this binary serves.
fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "no such console asset").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let mut response = if request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body: Cow<'static, [u8]> = file.data;
        ([(header::CONTENT_TYPE, content_type(path))], body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every asset's path, for the specs that check each one is served.
pub fn asset_paths() -> impl Iterator<Item = Cow<'static, str>> {
    Assets::iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let request = request.body(Body::empty()).unwrap_or_default();
        match router::<()>().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn every_page_path_answers_the_shell_and_assets_answer_themselves() {
        for path in ["/console", "/console/", "/console/orders/0195", "/console/pipeline"] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert!(response.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
        let mut assets = 0;
        for path in asset_paths() {
            let response = get(&format!("/console/assets/{path}"), None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assets += 1;
        }
        assert!(assets >= 2, "the shell and at least a script: {assets}");
        assert_eq!(get("/console/assets/nothing.js", None).await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_unchanged_asset_is_not_sent_again() {
        let first = get("/console", None).await;
        let etag = first.headers()[header::ETAG].to_str().map(str::to_owned).unwrap_or_default();
        assert!(etag.len() > 2, "an ETag: {etag}");
        assert_eq!(get("/console", Some(&etag)).await.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(get("/console", Some("\"other\"")).await.status(), StatusCode::OK);
    }
}
