//! `tracing` spans placed in W3C traces, through the OpenTelemetry layer
//! (`tracing-opentelemetry`) that the `ledger` binary installs whether it exports or not:
//! that layer gives every span an id in a trace, and the log lines their `trace_id`.
//!
//! - [`continue_from`]: a span, before it is first entered, made the child of a remote
//!   parent (a request's `traceparent`, a message's header, a saga's stored context).
//! - [`pass_on`]: the context to hand on from inside a span: into an event's metadata, onto
//!   a response. Where no layer records spans (the in-process tests, a library user) it is
//!   made up: the parent's trace with a fresh parent id, or a new unsampled trace. So every
//!   event gets a `traceparent` either way, and only its parent id may name no real span.
//! - [`record_message_spans`]: for a consumer that handles many messages of many traces
//!   in one batch, one short span per message in the message's own trace, linked to the
//!   batch's span; only for sampled messages, so a process that does not export (whose new
//!   traces are unsampled) pays nothing per message.

use std::time::SystemTime;

use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::traceparent::TraceParent;

/// The instrumentation scope of the ledger's spans.
pub const SCOPE: &str = "ledger";

/// Makes `span` (not yet entered) a child of `parent`, with the vendor state of
/// `tracestate` when that is valid. Nothing happens where no layer records spans.
pub fn continue_from(span: &Span, parent: TraceParent, tracestate: Option<&str>) {
    let state = tracestate.and_then(|state| state.parse::<TraceState>().ok()).unwrap_or_default();
    // Fails only without a layer, or for a span already entered: then there is nothing to join.
    let _ = span.set_parent(Context::new().with_remote_span_context(remote(parent, state)));
}

/// `span`'s own place in its trace; `None` where no layer records it.
pub fn of(span: &Span) -> Option<TraceParent> {
    let context = span.context();
    let span = context.span();
    let span_context = span.span_context();
    TraceParent::new(
        u128::from_be_bytes(span_context.trace_id().to_bytes()),
        u64::from_be_bytes(span_context.span_id().to_bytes()),
        span_context.trace_flags().to_u8(),
    )
}

/// What to hand on from inside `span`, which continues `parent` (if any): see the module
/// documentation.
pub fn pass_on(span: &Span, parent: Option<TraceParent>) -> TraceParent {
    of(span).unwrap_or_else(|| parent.map_or_else(|| TraceParent::mint(false), TraceParent::child))
}

/// Records a `name`d consumer span, from `started` until now, in the trace of each sampled
/// parent (each message of a batch), linked to `batch` (the span the batch was handled
/// in), with `attributes`; its status is an error when the batch `failed`. Spans go to
/// the global tracer provider, which only an exporting process sets.
pub fn record_message_spans(
    name: &str,
    parents: impl IntoIterator<Item = TraceParent>,
    batch: &Span,
    started: SystemTime,
    failed: bool,
    attributes: &[(&'static str, &str)],
) {
    let mut sampled = parents.into_iter().filter(|parent| parent.is_sampled()).peekable();
    if sampled.peek().is_none() {
        return;
    }
    let tracer = opentelemetry::global::tracer(SCOPE);
    let batch = batch.context().span().span_context().clone();
    let attributes: Vec<KeyValue> =
        attributes.iter().map(|(key, value)| KeyValue::new(*key, (*value).to_owned())).collect();
    let ended = SystemTime::now();
    for parent in sampled {
        let parent = Context::new().with_remote_span_context(remote(parent, TraceState::NONE));
        let mut builder = tracer
            .span_builder(name.to_owned())
            .with_kind(SpanKind::Consumer)
            .with_start_time(started)
            .with_attributes(attributes.clone());
        if batch.is_valid() {
            builder = builder.with_links(vec![Link::with_context(batch.clone())]);
        }
        let mut span = builder.start_with_context(&tracer, &parent);
        if failed {
            span.set_status(Status::error("the batch failed"));
        }
        span.end_with_timestamp(ended);
    }
}

fn remote(parent: TraceParent, state: TraceState) -> SpanContext {
    SpanContext::new(
        parent.trace_id().into(),
        parent.parent_id().into(),
        TraceFlags::new(parent.flags()),
        true,
        state,
    )
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// A subscriber with the OpenTelemetry layer over a provider that exports nothing and
    /// samples as `root` for new traces, as the binary's without an endpoint.
    fn recording(root: Sampler) -> impl tracing::Subscriber + Send + Sync {
        let provider =
            SdkTracerProvider::builder().with_sampler(Sampler::ParentBased(Box::new(root))).build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer(SCOPE)))
    }

    fn parent() -> TraceParent {
        TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid")
    }

    #[test]
    fn a_span_continued_from_a_parent_hands_on_its_own_place_in_that_trace() {
        tracing::subscriber::with_default(recording(Sampler::AlwaysOff), || {
            let span = tracing::info_span!("request");
            continue_from(&span, parent(), Some("vendor=value"));
            let passed = pass_on(&span, Some(parent()));
            assert_eq!(passed.trace_id(), parent().trace_id());
            assert_ne!(passed.parent_id(), parent().parent_id(), "the span's own id");
            assert!(passed.is_sampled(), "the caller's decision is kept");
            assert_eq!(of(&span), Some(passed));
            // A span inside it is in the same trace.
            let inner = span.in_scope(|| tracing::info_span!("inner"));
            assert_eq!(pass_on(&inner, None).trace_id(), parent().trace_id());
        });
    }

    #[test]
    fn a_span_without_a_parent_starts_a_trace_unsampled_where_nothing_is_exported() {
        tracing::subscriber::with_default(recording(Sampler::AlwaysOff), || {
            let span = tracing::info_span!("request");
            let passed = pass_on(&span, None);
            assert!(!passed.is_sampled());
            assert_eq!(of(&span), Some(passed));
        });
    }

    #[test]
    fn without_a_layer_the_context_is_made_up_from_the_parent() {
        let span = tracing::info_span!("request");
        continue_from(&span, parent(), None);
        assert_eq!(of(&span), None);
        let passed = pass_on(&span, Some(parent()));
        assert_eq!(passed.trace_id(), parent().trace_id());
        assert_ne!(passed.parent_id(), parent().parent_id());
        assert_ne!(pass_on(&span, None).trace_id(), parent().trace_id());
    }
}
