//! Correlation ids: taken from `X-Correlation-Id` or minted, stored on the request for the
//! handlers (they go into event metadata), echoed on the response, and recorded on the
//! request's tracing span so every log line of a request carries it.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::extract::malformed_header;
use crate::limits::CORRELATION_ID_MAX;

pub const HEADER: &str = "x-correlation-id";

#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

pub async fn correlate(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(HEADER) {
        None => Uuid::now_v7().to_string(),
        Some(value) => match value.to_str() {
            Ok(id)
                if (1..=CORRELATION_ID_MAX).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                id.to_owned()
            }
            _ => {
                let message = format!("must be 1 to {CORRELATION_ID_MAX} visible ASCII characters");
                return malformed_header(HEADER, &message).into_response();
            }
        },
    };
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// The request's span: the server span of its trace (see [`crate::trace`]), named in the
/// trace after the route (`POST /v1/orders/{id}/payments`), never the raw path.
pub fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let correlation_id =
        request.extensions().get::<CorrelationId>().map(|id| id.0.as_str()).unwrap_or_default();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched route", axum::extract::MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id,
        principal = tracing::field::Empty,
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "server",
    );
    crate::trace::join_incoming(&span, request.headers());
    span
}
