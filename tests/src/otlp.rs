//! A real OTLP/HTTP receiver for the trace specs: an HTTP server on a free port that takes
//! `POST /v1/traces` in the OTLP/JSON encoding (an `ExportTraceServiceRequest`: hex trace
//! and span ids, attributes as typed values), as `ledger --otlp-endpoint` sends them, and
//! keeps every span it was sent for the test to look at. Protobuf is refused with 415:
//! the ledger sends JSON.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// `kind` of a server span (OTLP's `SPAN_KIND_SERVER`).
pub const SERVER: i64 = 2;
/// `kind` of a consumer span (OTLP's `SPAN_KIND_CONSUMER`).
pub const CONSUMER: i64 = 5;

/// One span as received.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The `service.name` of the resource it came with.
    pub service_name: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// OTLP's span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i64,
    /// Every attribute's value as text (strings as they are, other values as JSON).
    pub attributes: BTreeMap<String, String>,
    /// The (trace id, span id) of each span it links to.
    pub links: Vec<(String, String)>,
}

type Received = Arc<Mutex<Vec<ReceivedSpan>>>;

pub struct OtlpReceiver {
    address: SocketAddr,
    received: Received,
    stop: CancellationToken,
}

impl OtlpReceiver {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let received = Received::default();
        let router = Router::new().route("/v1/traces", post(export)).with_state(received.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopped.cancelled().await });
            if let Err(error) = served.await {
                eprintln!("the OTLP receiver stopped: {error}");
            }
        });
        Ok(Self { address, received, stop })
    }

    /// What `--otlp-endpoint` names: the receiver's base URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().map(|spans| spans.clone()).unwrap_or_default()
    }

    /// The spans received so far of the trace `trace_id`.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans().into_iter().filter(|span| span.trace_id == trace_id).collect()
    }

    /// Whether `span`'s chain of parents, among the spans received of its trace, reaches
    /// the span `ancestor` (a span id).
    pub fn descends_from(&self, span: &ReceivedSpan, ancestor: &str) -> bool {
        let trace = self.trace(&span.trace_id);
        let mut parent = span.parent_span_id.clone();
        // A chain is at most as long as the trace: a loop cannot keep this going.
        for _ in 0..=trace.len() {
            match parent {
                Some(id) if id == ancestor => return true,
                Some(id) => {
                    parent = trace
                        .iter()
                        .find(|s| s.span_id == id)
                        .and_then(|s| s.parent_span_id.clone());
                }
                None => return false,
            }
        }
        false
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `POST /v1/traces`: keeps the spans, answers an `ExportTraceServiceResponse`.
async fn export(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let json_sent = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !json_sent {
        let message = "this receiver takes OTLP/JSON only";
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(json!({ "message": message })));
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("not JSON: {error}");
            return (StatusCode::BAD_REQUEST, Json(json!({ "message": message })));
        }
    };
    let spans = spans_of(&request);
    if let Ok(mut kept) = received.lock() {
        kept.extend(spans);
    }
    (StatusCode::OK, Json(json!({})))
}

/// The spans of an `ExportTraceServiceRequest`.
fn spans_of(request: &Value) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in list(&request["resourceSpans"]) {
        let resource = attributes(&resource_spans["resource"]["attributes"]);
        let service_name = resource.get("service.name").cloned().unwrap_or_default();
        for scope_spans in list(&resource_spans["scopeSpans"]) {
            for span in list(&scope_spans["spans"]) {
                let text = |field: &str| span[field].as_str().unwrap_or_default().to_owned();
                spans.push(ReceivedSpan {
                    service_name: service_name.clone(),
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: Some(text("parentSpanId")).filter(|id| !id.is_empty()),
                    name: text("name"),
                    kind: span["kind"].as_i64().unwrap_or_default(),
                    attributes: attributes(&span["attributes"]),
                    links: list(&span["links"])
                        .map(|link| {
                            let id =
                                |field: &str| link[field].as_str().unwrap_or_default().to_owned();
                            (id("traceId"), id("spanId"))
                        })
                        .collect(),
                });
            }
        }
    }
    spans
}

fn list(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// OTLP key-values (`[{key, value: {stringValue | intValue | …}}]`) as text.
fn attributes(value: &Value) -> BTreeMap<String, String> {
    list(value)
        .filter_map(|pair| {
            let key = pair["key"].as_str()?.to_owned();
            let typed = pair["value"].as_object()?.values().next()?;
            let text = typed.as_str().map_or_else(|| typed.to_string(), str::to_owned);
            Some((key, text))
        })
        .collect()
}
