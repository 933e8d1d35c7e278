//! The W3C trace context of a request. The request span (see
//! [`crate::correlation::request_span`]) is the server span of the trace the request's
//! `traceparent` names (with its `tracestate`); a missing or invalid one (the
//! specification: ignored, never refused) starts a new trace. Inside that span,
//! [`continue_trace`] takes the span's place in the trace for the handlers (through
//! `CommandHeaders`), which record it in every event the request appends (`metadata.traceparent`: the trace id and the
//! request span's id as parent), and answers it as `traceresponse` (W3C Trace Context
//! level 2: the server's own span, in `traceparent`'s format), so a client that sent no
//! context learns its trace id.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use trace_context::{TraceParent, TRACEPARENT, TRACESTATE};

/// The response header naming the request's server span.
pub const TRACERESPONSE: &str = "traceresponse";

/// The request span's place in its trace, for the handlers.
#[derive(Clone, Copy, Debug)]
pub struct RequestTrace(pub TraceParent);

/// The request's valid `traceparent`, if it has one.
fn incoming(headers: &HeaderMap) -> Option<TraceParent> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    TraceParent::parse(value).ok()
}

/// Makes the request span the child of the request's trace context, if it has a valid one.
pub fn join_incoming(span: &tracing::Span, headers: &HeaderMap) {
    if let Some(parent) = incoming(headers) {
        let state = headers.get(TRACESTATE).and_then(|value| value.to_str().ok());
        trace_context::continue_from(span, parent, state);
    }
}

/// Middleware inside the request span: hands its trace context to the handlers and the
/// response.
pub async fn continue_trace(mut request: Request, next: Next) -> Response {
    let trace = trace_context::pass_on(&tracing::Span::current(), incoming(request.headers()));
    request.extensions_mut().insert(RequestTrace(trace));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
        response.headers_mut().insert(TRACERESPONSE, value);
    }
    response
}
