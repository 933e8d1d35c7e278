//! W3C Trace Context across the ledger: one trace runs from an HTTP request through the
//! events it appends, over the bus, into each consumer's work.
//!
//! Where the context lives at each hop: the request's `traceparent` header (or a new
//! trace) → the request span → each appended event's `metadata.traceparent` (the trace id
//! and the request span's id) → the relay's `traceparent` message header → the consumer's
//! span, whose parent it names → the metadata of the events a consumer's commands append
//! (the payment service).
//!
//! - [`TraceParent`]: the header value, parsed (an invalid one is ignored, never refused)
//!   and formatted.
//! - [`span`]: `tracing` spans joined to those traces through the OpenTelemetry layer the
//!   `ledger` binary installs; exporting them (OTLP) is the binary's business, not this
//!   crate's.

pub mod span;
mod traceparent;

pub use span::{continue_from, pass_on, record_message_spans};
pub use traceparent::{InvalidTraceParent, TraceParent, TRACEPARENT, TRACESTATE};
