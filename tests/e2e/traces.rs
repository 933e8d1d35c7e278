//! One trace from a request to the read model: the `ledger` binary (every role but the
//! dispatcher, on NATS JetStream) exports its spans to a real OTLP/HTTP receiver, and the
//! W3C trace context a client sends runs through the request span, the events' metadata,
//! the bus's `traceparent` header, the projection's span and the payment service's
//! commands. An invalid `traceparent` starts a new trace instead of failing the request;
//! JSON log lines carry the trace id; spans still queued at SIGTERM are exported.

use std::time::Duration;

use ledger::bus_choice::{BusKind, BusSettings};
use ledger_tests::buses::{nats_url, BusReader};
use ledger_tests::otlp::{OtlpReceiver, ReceivedSpan, CONSUMER, SERVER};
use ledger_tests::payments::{charged_order_body, process_config};
use ledger_tests::{expect_json, poll_until, LedgerConfig, LedgerProcess, TestApp, TestDatabase};
use payment_standin::{Options, StandIn};
use serde_json::Value;
use uuid::Uuid;

/// How long anything here may take: the exporter sends every 5 s.
const DEADLINE: Duration = Duration::from_secs(30);

/// The parts of a `traceparent` (or `traceresponse`) value.
struct Context {
    trace_id: String,
    span_id: String,
    flags: String,
}

fn context(value: &str) -> anyhow::Result<Context> {
    let parts: Vec<&str> = value.split('-').collect();
    match parts.as_slice() {
        ["00", trace_id, span_id, flags]
            if trace_id.len() == 32 && span_id.len() == 16 && flags.len() == 2 =>
        {
            Ok(Context {
                trace_id: (*trace_id).to_owned(),
                span_id: (*span_id).to_owned(),
                flags: (*flags).to_owned(),
            })
        }
        _ => anyhow::bail!("not a version 00 trace context: {value:?}"),
    }
}

/// Places an order (charged to a card when `payment_method` is given), sending
/// `traceparent` when given; answers the order id and the response's `traceresponse`.
async fn place(
    ledger: &LedgerProcess,
    traceparent: Option<&str>,
    payment_method: Option<&str>,
) -> anyhow::Result<(Uuid, Context)> {
    let order_id = Uuid::now_v7();
    let body = match payment_method {
        Some(method) => charged_order_body(order_id, "cus_traced", method),
        None => TestApp::order_body(order_id, "cus_traced"),
    };
    let mut request = ledger.http.post(ledger.url("/v1/orders")).json(&body);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent).header("tracestate", "spec=1");
    }
    let response = request.send().await?;
    let answered = response
        .headers()
        .get("traceresponse")
        .map(|value| value.to_str().map(str::to_owned))
        .transpose()?;
    expect_json(response, 201).await?;
    let answered = answered.ok_or_else(|| anyhow::anyhow!("no traceresponse header"))?;
    Ok((order_id, context(&answered)?))
}

/// The order's events as `GET /v1/orders/{id}/events` answers them.
async fn history(ledger: &LedgerProcess, order_id: Uuid) -> anyhow::Result<Vec<Value>> {
    let history = ledger.get_json(&format!("/v1/orders/{order_id}/events")).await?;
    Ok(history["events"].as_array().cloned().unwrap_or_default())
}

fn of_type<'a>(events: &'a [Value], event_type: &str) -> Option<&'a Value> {
    events.iter().find(|event| event["event_type"] == event_type)
}

#[tokio::test]
async fn one_trace_runs_from_the_request_to_the_read_model() -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let receiver = OtlpReceiver::start().await?;
    let standin = StandIn::start(Options::default()).await?;
    let config = LedgerConfig::new(&database.url)?
        .roles("api,relay,projector,payments")
        .arg("--bus", "nats")
        .arg("--nats-url", &nats_url())
        .arg("--otlp-endpoint", &receiver.endpoint())
        .arg("--log-format", "json")
        // The request's own lines (tower-http's, at debug) are logged in its span.
        .env("RUST_LOG", "info,tower_http=debug");
    let config = process_config(config, &standin);
    let channels = bus::Channels::new(config.topic_prefix.clone());
    let mut ledger = LedgerProcess::start(config).await?;
    let mut bus = BusSettings::new(BusKind::Nats, &channels);
    bus.nats.url = nats_url();
    let reader = BusReader::start(&bus);
    let outcome = async {
        reader.wait_until_joined(DEADLINE).await?;
        spec(&mut ledger, &receiver, &reader).await
    }
    .await;
    ledger.explain(outcome)
}

async fn spec(
    ledger: &mut LedgerProcess,
    receiver: &OtlpReceiver,
    reader: &BusReader,
) -> anyhow::Result<()> {
    // A client's trace: the request joins it, as the server span under the client's span.
    let trace_id = Uuid::new_v4().simple().to_string();
    let client_span = format!("{:016x}", fastrand::u64(1..));
    let sent = format!("00-{trace_id}-{client_span}-01");
    let (order_id, answered) = place(ledger, Some(&sent), Some("pm_card_visa")).await?;
    assert_eq!(answered.trace_id, trace_id, "traceresponse names the client's trace");
    assert_ne!(answered.span_id, client_span, "…and the server's own span in it");
    assert_eq!(answered.flags, "01");
    let request_span = answered.span_id;

    // Every event of the request records the request span as the parent to continue.
    let events = history(ledger, order_id).await?;
    let placed =
        of_type(&events, "OrderPlaced").ok_or_else(|| anyhow::anyhow!("no OrderPlaced"))?;
    let stored = placed["metadata"]["traceparent"].as_str().unwrap_or_default().to_owned();
    assert_eq!(stored, format!("00-{trace_id}-{request_span}-01"), "{placed}");

    // The relay put it on the bus as the message's header.
    let messages = reader
        .read_until(DEADLINE, "the placement on the bus", |messages| {
            messages.iter().any(|m| m.key == order_id.to_string())
        })
        .await?;
    let message = messages
        .iter()
        .find(|m| m.envelope().is_ok_and(|e| e.event_id.to_string() == placed["event_id"]))
        .ok_or_else(|| anyhow::anyhow!("the placement is not on the bus"))?;
    assert_eq!(message.traceparent.as_deref(), Some(stored.as_str()));

    // The receiver gets the request's server span and the payments projection's span for
    // the event, whose parents lead back to the request span.
    let (request, projected) =
        poll_until(DEADLINE, "the request's trace to be exported", || async {
            let trace = receiver.trace(&trace_id);
            let request = trace.iter().find(|span| span.span_id == request_span).cloned();
            let projected = trace
                .iter()
                .find(|span| {
                    span.name == "project payments" && receiver.descends_from(span, &request_span)
                })
                .cloned();
            Ok(request.zip(projected))
        })
        .await?;
    assert_eq!(request.kind, SERVER);
    assert_eq!(request.name, "POST /v1/orders");
    assert_eq!(request.parent_span_id.as_deref(), Some(client_span.as_str()));
    assert_eq!(request.service_name, "ledger");
    assert_eq!(projected.kind, CONSUMER);
    assert_eq!(projected.attributes.get("projection").map(String::as_str), Some("payments"));
    assert_eq!(projected.parent_span_id.as_deref(), Some(request_span.as_str()));
    assert!(!projected.links.is_empty(), "linked to its batch's span: {projected:?}");

    // The payment service continues the trace: its capture names the placement as its
    // cause, keeps the correlation id, and is appended in a span of the same trace.
    let captured = poll_until(DEADLINE, "the payment service to capture", || async {
        Ok(of_type(&history(ledger, order_id).await?, "PaymentCaptured").cloned())
    })
    .await?;
    let metadata = &captured["metadata"];
    assert_eq!(metadata["causation_id"], placed["event_id"], "{captured}");
    assert_eq!(metadata["correlation_id"], placed["metadata"]["correlation_id"]);
    assert_eq!(metadata["actor"], "process:payments");
    let capture_context = context(metadata["traceparent"].as_str().unwrap_or_default())?;
    assert_eq!(capture_context.trace_id, trace_id, "{captured}");
    let step = poll_until(DEADLINE, "the saga's spans to be exported", || async {
        let trace = receiver.trace(&trace_id);
        Ok(trace.into_iter().find(|span| span.span_id == capture_context.span_id))
    })
    .await?;
    assert_eq!(step.name, "saga_step");
    assert!(receiver.descends_from(&step, &request_span), "{step:?}");

    // A traceparent that is not valid starts a new trace: the request goes through.
    for invalid in [
        format!("00-{}-{client_span}-01", "0".repeat(32)),
        format!("00-{}-{client_span}-01", trace_id.to_uppercase()),
        "a-trace".to_owned(),
    ] {
        let (order_id, answered) = place(ledger, Some(&invalid), None).await?;
        assert_ne!(answered.trace_id, trace_id, "{invalid}");
        assert_ne!(answered.trace_id, "0".repeat(32), "{invalid}");
        let events = history(ledger, order_id).await?;
        let stored = events[0]["metadata"]["traceparent"].as_str().unwrap_or_default();
        assert_eq!(context(stored)?.trace_id, answered.trace_id, "{invalid}");
    }

    // JSON log lines logged in the request span carry its trace and span ids.
    let log = ledger.log_text()?;
    let lines: Vec<Value> =
        log.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let in_request = lines
        .iter()
        .filter(|line| {
            line["trace_id"] == trace_id.as_str() && line["span_id"] == request_span.as_str()
        })
        .count();
    assert!(in_request >= 2, "the request's lines carry its ids: {log}");
    for line in &lines {
        let of_a_request = line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["name"] == "request"));
        if of_a_request {
            assert!(line["trace_id"].is_string() && line["span_id"].is_string(), "{line}");
        }
    }

    // Spans still queued when the process is told to stop are exported before it exits.
    let (_, last) = place(ledger, None, None).await?;
    assert_eq!(last.flags, "01", "a new trace of an exporting process is sampled");
    let status = ledger.terminate(DEADLINE).await?;
    assert!(status.success(), "the ledger stopped with {status}");
    let exported = |span: &ReceivedSpan| span.span_id == last.span_id;
    assert!(
        receiver.trace(&last.trace_id).iter().any(exported),
        "the last request's span was not exported at shutdown"
    );
    Ok(())
}
