//! Logs and traces, one installation per process (`tracing`'s global subscriber).
//!
//! - **Logs**: to stderr, human-readable or JSON (`LOG_FORMAT=json`), filtered by
//!   `RUST_LOG` (default `info`). A JSON line logged inside a span (a request, a consumer's
//!   batch or message, a saga step) carries that span's `trace_id` and `span_id` first.
//! - **Traces**: every span at `info` and above, whatever `RUST_LOG` says, has a place in
//!   a W3C trace through the OpenTelemetry layer, which `trace_context` reads to put the
//!   context into events' metadata, onto the bus and into responses. With
//!   `LEDGER_OTLP_ENDPOINT` the spans are exported there (OTLP over HTTP, JSON, batched
//!   on a thread of the SDK's own) under the service name `OTEL_SERVICE_NAME` (default
//!   `ledger`), sampled as the caller's `traceparent` says, else all of them (the SDK
//!   reads `OTEL_TRACES_SAMPLER` to change that). Without it nothing is recorded: new
//!   traces start unsampled (flags `00`), the ids cost a few allocations per span, and a
//!   caller's sampled flag is passed on unchanged.
//!
//! The exporter holds spans for up to 5 s (`OTEL_BSP_SCHEDULE_DELAY`) before sending them;
//! [`Telemetry::shutdown`], when the process ends, sends what is left. Specs that look at
//! traces run the binary, which installs all this once; the in-process test servers
//! install nothing, and their events get a made-up context (see `trace_context::pass_on`).

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use url::Url;

use crate::config::LogFormat;

/// The path OTLP/HTTP receivers take traces at, under the endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// What must outlive the process's work: the tracer provider, whose exporter is flushed
/// at [`shutdown`](Self::shutdown).
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Installs logging and tracing for the process (the first call only: tests that build
/// several applications in one process install nothing, or keep the first).
pub fn init(format: LogFormat, otlp_endpoint: Option<&Url>) -> anyhow::Result<Telemetry> {
    let resource = Resource::builder().with_service_name(service_name()).build();
    let provider = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(traces_url(endpoint))
                .build()
                .context("LEDGER_OTLP_ENDPOINT / --otlp-endpoint: building the OTLP exporter")?;
            let provider = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(exporter)
                .build();
            // For the spans made without a `tracing` span (a projection's per message).
            opentelemetry::global::set_tracer_provider(provider.clone());
            provider
        }
        None => SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .build(),
    };
    // Spans at info and above, whatever `RUST_LOG` says; log lines become span events
    // only where they are exported.
    let exporting = otlp_endpoint.is_some();
    let traced =
        filter_fn(move |meta| *meta.level() <= Level::INFO && (exporting || meta.is_span()));
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(trace_context::span::SCOPE))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(traced);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .fmt_fields(JsonFields::new())
            .event_format(WithTraceIds(
                format::format().json().flatten_event(true).with_current_span(true),
            ))
            .boxed(),
    };
    // `try_init`: tests start many applications in one process; only the first installs.
    let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(traces).try_init();
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter. Blocks (up to the exporter's
    /// timeout): call it outside the async runtime, once its tasks are done.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "exporting the last spans failed");
        }
    }
}

fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "ledger".to_owned())
}

/// The endpoint's traces URL: `http://collector:4318` → `http://collector:4318/v1/traces`
/// (as `OTEL_EXPORTER_OTLP_ENDPOINT` is read); a URL that names the path already is kept.
fn traces_url(endpoint: &Url) -> String {
    let text = endpoint.as_str();
    if endpoint.path().ends_with(TRACES_PATH) {
        text.to_owned()
    } else {
        format!("{}{TRACES_PATH}", text.trim_end_matches('/'))
    }
}

/// `--otlp-endpoint`: an `http` or `https` URL.
pub fn parse_endpoint(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|error| format!("not a URL: {error}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("an http:// or https:// URL of an OTLP/HTTP receiver, such as \
                  http://127.0.0.1:4318"
            .to_owned()),
    }
}

/// A log line's JSON object with the `trace_id` and `span_id` of the innermost span it
/// was logged in that has a place in a trace.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ids = context.event_scope().and_then(|scope| {
            scope.into_iter().find_map(|span| {
                let extensions = span.extensions();
                let data = extensions.get::<tracing_opentelemetry::OtelData>()?;
                Some((data.trace_id()?, data.span_id()?))
            })
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(context, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(context, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                let separator = if rest.starts_with('}') { "" } else { "," };
                write!(
                    writer,
                    "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"{separator}{rest}"
                )
            }
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_is_under_the_endpoint() {
        let url = |text: &str| parse_endpoint(text).map(|url| traces_url(&url));
        assert_eq!(url("http://127.0.0.1:4318"), Ok("http://127.0.0.1:4318/v1/traces".into()));
        assert_eq!(url("http://c:4318/otlp/"), Ok("http://c:4318/otlp/v1/traces".into()));
        assert_eq!(url("https://c/v1/traces"), Ok("https://c/v1/traces".into()));
        assert!(parse_endpoint("collector:4318").is_err());
        assert!(parse_endpoint("ftp://collector").is_err());
        assert!(parse_endpoint("4318").is_err());
    }
}
