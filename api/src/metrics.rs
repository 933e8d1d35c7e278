//! Prometheus metrics at `/metrics`.
//!
//! Counters and histograms are recorded where things happen, in whichever crate (the
//! `metrics` facade, one process-wide recorder installed by [`install`]); gauges that
//! describe durable state — the relay's backlog, each projection's lag, dead letters
//! waiting, the connection pool — are read when Prometheus scrapes, so they are never
//! stale and cost nothing between scrapes.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use bus::relay::relay_report;
use bus::ConsumerState;

use crate::context::ApiContext;

/// Latency buckets from 1 ms to 10 s: commands live in the low milliseconds, and what is
/// slower than a few seconds is a timeout anyway.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every state a consumer reports, for `ledger_projection_consumer_state`: a state set, one
/// series per state, 1 for the state the consumer is in and 0 for the others, so that a
/// change of state leaves no series behind at 1. A state added to the enum belongs here.
const CONSUMER_STATES: [ConsumerState; 7] = [
    ConsumerState::Starting,
    ConsumerState::WaitingForBroker,
    ConsumerState::Running,
    ConsumerState::Unassigned,
    ConsumerState::WaitingForDatabase,
    ConsumerState::WaitingToPark,
    ConsumerState::Stopped,
];

/// How long a scrape may spend asking the database for the state gauges.
const SCRAPE_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first use (tests start many applications in one
/// process; they share it) and returns its handle; `None` if another recorder was
/// installed first.
pub fn install() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    let upkeep = handle.clone();
                    // Drains histogram samples into their buckets so memory stays flat.
                    std::thread::Builder::new()
                        .name("metrics-upkeep".to_owned())
                        .spawn(move || loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        })
                        .ok()?;
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        "ledger_command_duration_seconds",
        Unit::Seconds,
        "Command latency by command and outcome (accepted, replayed, or the error code)"
    );
    describe_counter!("ledger_events_appended_total", "Events appended by commands");
    describe_histogram!(
        "ledger_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP latency by method and route"
    );
    describe_counter!("ledger_http_requests_total", "HTTP requests by method, route and status");
    describe_counter!("ledger_http_throttled_total", "Requests refused 429, by principal");
    describe_counter!("ledger_http_timeouts_total", "Requests cut off by the time limit");
    describe_gauge!("ledger_db_pool_connections", "Connection pool: max, open and idle");
    describe_gauge!("ledger_db_pool_waiting_requests", "Requests waiting for a connection");
    describe_gauge!("ledger_database_up", "Whether the last scrape could read the database");
    describe_counter!(
        "ledger_relay_events_published_total",
        "Events this process's relay published"
    );
    describe_counter!(
        "ledger_relay_batches_published_total",
        "Batches this process's relay published"
    );
    describe_histogram!(
        "ledger_relay_publish_delay_seconds",
        Unit::Seconds,
        "From an event's append to the broker acknowledging it"
    );
    describe_histogram!(
        "ledger_projection_apply_delay_seconds",
        Unit::Seconds,
        "From an event's append to its projection batch committing, by projection"
    );
    describe_histogram!(
        "ledger_projection_delivery_delay_seconds",
        Unit::Seconds,
        "From an event's append to its batch reaching the projection (the bus's part of the apply delay), by projection"
    );
    describe_histogram!(
        "ledger_relay_broker_ack_seconds",
        Unit::Seconds,
        "From a batch handed to the broker to its last acknowledgement"
    );
    describe_histogram!(
        "ledger_projection_batch_duration_seconds",
        Unit::Seconds,
        "How long a consumer's batch took to decode, apply and commit, by projection"
    );
    describe_gauge!("ledger_relay_active", "1 while this process's relay holds the leadership");
    describe_gauge!("ledger_relay_broker_reachable", "1 while the relay reaches the broker");
    describe_gauge!("ledger_relay_last_publish_timestamp_seconds", "When the relay last published");
    describe_gauge!("ledger_relay_backlog_events", "Committed events not yet published");
    describe_gauge!(
        "ledger_relay_oldest_open_transaction_seconds",
        "Age of the oldest transaction that may append events (holds back the gap-safe horizon)"
    );
    describe_gauge!(
        "ledger_relay_lag_seconds",
        "How long ago the next event to publish was appended (0: all published)"
    );
    describe_gauge!(
        "ledger_projection_lag_events",
        "Events in the store past a projection's last applied position"
    );
    describe_gauge!(
        "ledger_projection_unapplied_events",
        "Events at or below a projection's last applied position not applied yet"
    );
    describe_gauge!(
        "ledger_projection_watermark_age_seconds",
        "How far behind now a projection is complete: every event appended before now minus this is applied"
    );
    describe_gauge!(
        "ledger_projection_consumer_lag_messages",
        "Messages on this process's partitions not yet acknowledged (the consumer group's lag), by projection"
    );
    describe_gauge!(
        "ledger_projection_consumer_state",
        "1 for the state this process's consumer is in (as /v1/admin/projections names it), 0 for the others, by projection and bus"
    );
    describe_gauge!(
        "ledger_dead_letters_waiting",
        "Parked messages not yet re-driven, by projection"
    );
    describe_counter!(
        "ledger_projection_events_applied_total",
        "Events this process applied, by projection"
    );
    describe_counter!(
        "ledger_projection_duplicates_total",
        "Redelivered events skipped, by projection"
    );
    describe_counter!(
        "ledger_projection_events_healed_total",
        "Missing events read from the store, by projection"
    );
    describe_counter!(
        "ledger_projection_events_caught_up_total",
        "Events applied from the store because the bus had not delivered them, by projection"
    );
    describe_counter!(
        "ledger_projection_dead_lettered_total",
        "Messages this process parked, by projection"
    );
}

/// Middleware: request counts and latency by route template (never the raw path, whose
/// ids would make one series per order) and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "ledger_http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone()
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!("ledger_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
pub async fn render(State(context): State<ApiContext>) -> Response {
    refresh_gauges(&context).await;
    let body = context.metrics.as_ref().map(PrometheusHandle::render).unwrap_or_default();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn refresh_gauges(context: &ApiContext) {
    let pool = context.store().pool().status();
    metrics::gauge!("ledger_db_pool_connections", "state" => "max").set(pool.max_size as f64);
    metrics::gauge!("ledger_db_pool_connections", "state" => "open").set(pool.size as f64);
    metrics::gauge!("ledger_db_pool_connections", "state" => "idle").set(pool.available as f64);
    metrics::gauge!("ledger_db_pool_waiting_requests").set(pool.waiting as f64);
    for consumer in &context.roles.consumers {
        let (name, state, lag) = {
            let status = consumer.status.borrow();
            (consumer.stats.borrow().projection.name(), status.state, status.lag_messages)
        };
        if let Some(lag) = lag {
            metrics::gauge!("ledger_projection_consumer_lag_messages", "projection" => name)
                .set(lag as f64);
        }
        for candidate in CONSUMER_STATES {
            let Some(label) = state_name(candidate) else { continue };
            metrics::gauge!(
                "ledger_projection_consumer_state",
                "projection" => name,
                "bus" => context.bus.relay_name.clone(),
                "state" => label
            )
            .set(f64::from(u8::from(candidate == state)));
        }
    }

    // State every process can read from the database, whichever roles it runs.
    let durable = tokio::time::timeout(SCRAPE_QUERY_TIMEOUT, async {
        let relay = relay_report(context.store().pool(), &context.bus.relay_name).await?;
        let projections = projections::status::report(context.store().pool()).await?;
        Ok::<_, eventstore::StoreError>((relay, projections))
    })
    .await;
    match durable {
        Ok(Ok((relay, reports))) => {
            metrics::gauge!("ledger_database_up").set(1.0);
            metrics::gauge!("ledger_relay_backlog_events").set(relay.backlog as f64);
            metrics::gauge!("ledger_relay_oldest_open_transaction_seconds")
                .set(relay.oldest_open_transaction_seconds.unwrap_or(0.0));
            metrics::gauge!("ledger_relay_lag_seconds").set(relay.lag_seconds);
            for report in reports {
                let projection = report.projection.name();
                metrics::gauge!("ledger_projection_lag_events", "projection" => projection)
                    .set(report.lag_events as f64);
                metrics::gauge!("ledger_projection_unapplied_events", "projection" => projection)
                    .set(report.unapplied_below_highest as f64);
                metrics::gauge!("ledger_projection_watermark_age_seconds", "projection" => projection)
                    .set(report.watermark_age_seconds);
                metrics::gauge!("ledger_dead_letters_waiting", "projection" => projection)
                    .set(report.dead_letters as f64);
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics: database state unavailable");
            metrics::gauge!("ledger_database_up").set(0.0);
        }
        Err(_) => {
            tracing::warn!("metrics: database state query timed out");
            metrics::gauge!("ledger_database_up").set(0.0);
        }
    }
}

/// A consumer state as the admin API spells it (its serde name, `waiting_for_broker`).
fn state_name(state: ConsumerState) -> Option<String> {
    serde_json::to_value(state).ok()?.as_str().map(str::to_owned)
}
