//! Running the ledger: limits answer fast with Retry-After instead of hanging, `/metrics`
//! exposes what an operator watches, `/readyz` tells the truth about the dependencies,
//! and `/openapi.json` describes exactly the routes and statuses the server has.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ledger_tests::{
    client_with_token, expect_json, expect_status, kafka_brokers, TestApp, ADMIN_TOKEN, READ_TOKEN,
    WRITE_TOKEN,
};
use serde_json::Value;
use uuid::Uuid;

/// A query that holds its request open for `wait_ms`: read-your-writes on an order the
/// projection will never apply (this application runs no projector).
/// A read that waits `wait_ms` for its own write: the order is in the store, but this
/// API-only app runs no projector, so the read model never shows it.
async fn slow_query(app: &TestApp, wait_ms: u64) -> anyhow::Result<String> {
    let order_id = app.place_order("cus_slow_read").await?;
    Ok(format!("/v1/payments/{order_id}?min_version=1&wait_ms={wait_ms}"))
}

#[tokio::test]
async fn a_token_over_its_in_flight_limit_gets_429_while_other_tokens_go_on() -> anyhow::Result<()>
{
    let app = TestApp::spawn_with(|settings| settings.access.max_in_flight_per_token = 1).await?;
    let admin = client_with_token(Some(ADMIN_TOKEN))?;
    let slow = app.url(&slow_query(&app, 3_000).await?);
    // Two slow reads on one token: whichever takes the slot holds it for 3 s, so the
    // other is refused at once.
    let mut first = tokio::spawn(admin.get(&slow).send());
    let mut second = tokio::spawn(admin.get(&slow).send());
    let (throttled, holding) = tokio::select! {
        answered = &mut first => (answered??, second),
        answered = &mut second => (answered??, first),
    };
    assert_eq!(throttled.headers()["retry-after"], "1");
    assert_eq!(throttled.headers()["content-type"], "application/problem+json");
    assert_eq!(expect_json(throttled, 429).await?["code"], "too_many_requests");

    // The limit is per token: another principal is served meanwhile.
    let reader = client_with_token(Some(READ_TOKEN))?;
    expect_status(reader.get(app.url("/v1/payments?limit=1")).send().await?, 200).await?;
    assert!(!holding.is_finished(), "the held request was still in flight");

    expect_json(holding.await??, 504).await?;
    expect_status(app.get("/v1/payments?limit=1").send().await?, 200).await?;
    Ok(())
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_answered_503_with_retry_after() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|settings| {
        settings.access.request_timeout = std::time::Duration::from_millis(300);
    })
    .await?;
    let slow = slow_query(&app, 4_000).await?;
    let started = Instant::now();
    let response = app.get(&slow).send().await?;
    let took = started.elapsed();
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(expect_json(response, 503).await?["code"], "request_timeout");
    assert!(took < Duration::from_secs(3), "answered at the limit, not after the wait: {took:?}");
    Ok(())
}

#[tokio::test]
async fn an_exhausted_connection_pool_answers_503_instead_of_hanging() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|settings| {
        settings.database.max_size = 1;
        settings.database.wait_timeout = std::time::Duration::from_millis(200);
    })
    .await?;
    // The only connection gets stuck in a command whose insert waits on a table lock.
    let mut blocker = app.database.client().await?;
    let lock = blocker.transaction().await?;
    lock.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE").await?;
    let writer = client_with_token(Some(WRITE_TOKEN))?;
    let stuck_id = Uuid::now_v7();
    let stuck = tokio::spawn(
        writer.post(app.url("/v1/orders")).json(&TestApp::order_body(stuck_id, "cus_pool")).send(),
    );
    app.database.until_a_session_waits_on_a_lock().await?;

    let started = Instant::now();
    let refused = app.get("/v1/payments?limit=1").send().await?;
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast: {:?}", started.elapsed());
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(expect_json(refused, 503).await?["code"], "service_unavailable");

    lock.rollback().await?;
    expect_status(stuck.await??, 201).await?;
    expect_status(app.get("/v1/payments?limit=1").send().await?, 200).await?;
    Ok(())
}

/// One sample of a series in the Prometheus text format, by name and label fragment.
fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .find(|line| line.contains(labels))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn scrape(app: &TestApp) -> anyhow::Result<String> {
    let response = reqwest::Client::new().get(app.url("/metrics")).send().await?;
    assert!(response.headers()["content-type"].to_str()?.starts_with("text/plain"));
    expect_status(response, 200).await
}

#[tokio::test]
async fn metrics_expose_commands_events_relay_projections_and_the_pool() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let before = scrape(&app).await?;
    let appended_before = sample(&before, "ledger_events_appended_total", "").unwrap_or(0.0);

    let order_id = app.place_order("cus_metrics").await?;
    let captured = app.capture(order_id, "pay_1", 3000).await?;
    let version = TestApp::version_of(captured).await?;
    app.payments(order_id, version).await?;

    let metrics = scrape(&app).await?;
    let appended = sample(&metrics, "ledger_events_appended_total", "").unwrap_or(0.0);
    // Tests share the process-wide recorder, so others may add to it too.
    assert!(appended >= appended_before + 3.0, "placed + captured + fully paid: {appended}");
    let latency = "ledger_command_duration_seconds_count";
    for command in ["place_order", "capture_payment"] {
        let labels = format!("command=\"{command}\",outcome=\"accepted\"");
        assert!(sample(&metrics, latency, &labels).is_some_and(|n| n >= 1.0), "{command}");
    }
    assert!(metrics.contains("ledger_command_duration_seconds_bucket{"), "a histogram");
    assert!(sample(&metrics, "ledger_http_requests_total", "route=\"/v1/orders/{id}/payments\"")
        .is_some_and(|n| n >= 1.0));
    assert!(sample(&metrics, "ledger_relay_events_published_total", "").is_some_and(|n| n >= 3.0));
    assert!(sample(&metrics, "ledger_relay_backlog_events", "").is_some());
    for projection in ["payments", "notifications"] {
        let labels = format!("projection=\"{projection}\"");
        assert!(sample(&metrics, "ledger_projection_lag_events", &labels).is_some());
        assert!(sample(&metrics, "ledger_dead_letters_waiting", &labels).is_some());
    }
    assert!(sample(&metrics, "ledger_projection_events_applied_total", "projection=\"payments\"")
        .is_some_and(|n| n >= 3.0));
    assert_eq!(sample(&metrics, "ledger_db_pool_connections", "state=\"max\""), Some(8.0));
    assert_eq!(sample(&metrics, "ledger_database_up", ""), Some(1.0));
    Ok(())
}

#[tokio::test]
async fn readiness_needs_the_database_with_every_migration_applied() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let ready = expect_json(reqwest::get(app.url("/readyz")).await?, 200).await?;
    assert_eq!(ready["migrations"], "applied");
    assert_eq!(ready["broker"], "not_used", "an API-only process needs no broker");

    // A database behind this build's schema: not ready.
    app.database
        .client()
        .await?
        .batch_execute(
            "DELETE FROM refinery_schema_history
              WHERE version = (SELECT max(version) FROM refinery_schema_history)",
        )
        .await?;
    let behind = expect_json(reqwest::get(app.url("/readyz")).await?, 503).await?;
    assert_eq!(behind["migrations"], "pending");
    expect_status(reqwest::get(app.url("/healthz")).await?, 200).await?;
    Ok(())
}

/// Fills a path template's `{…}` parameters.
fn concrete(path: &str) -> String {
    // An unknown projection: a rebuild must not actually start here.
    path.replace("{id}", &Uuid::now_v7().to_string()).replace("{name}", "no-such-projection")
}

fn documented_statuses(operation: &Value) -> BTreeSet<u16> {
    operation["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(status, _)| status.parse().ok())
        .collect()
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes_and_statuses_the_server_has() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let spec = expect_json(reqwest::get(app.url("/openapi.json")).await?, 200).await?;
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1");

    let mut operations = 0;
    for (template, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            operations += 1;
            let documented = documented_statuses(operation);
            let url = app.url(&concrete(template));
            let secured = operation.get("security").is_some();
            assert_eq!(secured, template.starts_with("/v1/"), "{method} {template} security");

            // With the admin token and no body, the route exists (whatever it answers is
            // one of its documented statuses), and it is never the fallback's 404/405.
            let request = match method.as_str() {
                "get" => app.get(&concrete(template)),
                "post" => app.post(&concrete(template)),
                "delete" => app.http.delete(app.url(&concrete(template))),
                other => anyhow::bail!("undocumented method kind {other}"),
            };
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = response.text().await?;
            assert!(
                documented.contains(&status),
                "{method} {template}: {status} not in {documented:?}: {body}"
            );
            assert!(!body.contains("resource not found"), "{method} {template} is routed");
            assert_ne!(status, 405, "{method} {template}");

            if secured {
                // The gate's answers are documented, and given.
                let anonymous = reqwest::Client::new();
                let request = match method.as_str() {
                    "post" => anonymous.post(&url),
                    "delete" => anonymous.delete(&url),
                    _ => anonymous.get(&url),
                };
                let status = request.send().await?.status().as_u16();
                assert_eq!(status, 401, "{method} {template} without a token");
                for gate in [401, 403, 429, 503] {
                    assert!(documented.contains(&gate), "{method} {template} documents {gate}");
                }
            }
        }
    }
    // Every route of the router is in the document (it is built from the same list), and
    // the count guards against a route group silently missing.
    assert_eq!(
        operations, 26,
        "6 commands, 7 queries, 9 operations, session, healthz, readyz, metrics"
    );

    // And nothing undocumented answers.
    let undocumented = app.get("/v1/orders/not-a-route/extra").send().await?;
    assert_eq!(undocumented.status().as_u16(), 404);
    let wrong_method = app.http.delete(app.url("/v1/payments")).send().await?;
    assert_eq!(wrong_method.status().as_u16(), 405);
    Ok(())
}

/// Links let a client walk real lifecycles: from every command's answer to the order's
/// queries and commands, from a list to the operations on its items. Each names an
/// operation that exists, by `operationId`, and only parameters that operation takes.
#[tokio::test]
async fn the_document_links_answers_to_the_operations_that_take_their_ids() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let document = expect_json(app.get("/openapi.json").send().await?, 200).await?;
    let mut operations = std::collections::HashMap::new();
    for (_, item) in document["paths"].as_object().into_iter().flatten() {
        for (_, operation) in item.as_object().into_iter().flatten() {
            let parameters: Vec<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}.{}",
                        p["in"].as_str().unwrap_or(""),
                        p["name"].as_str().unwrap_or("")
                    )
                })
                .collect();
            operations.insert(
                operation["operationId"].as_str().unwrap_or("").to_owned(),
                (operation, parameters),
            );
        }
    }
    let mut links = Vec::new();
    for (id, (operation, _)) in &operations {
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                links.push((format!("{id} {status} {name}"), link.clone()));
            }
        }
    }
    for (from, link) in &links {
        let target = link["operationId"].as_str().unwrap_or_default();
        let (_, parameters) =
            operations.get(target).ok_or_else(|| anyhow::anyhow!("{from}: no {target}"))?;
        for (parameter, _) in link["parameters"].as_object().into_iter().flatten() {
            assert!(parameters.contains(parameter), "{from}: {target} takes no {parameter}");
        }
    }
    let from_placing: Vec<&str> = links
        .iter()
        .filter(|(from, _)| from.starts_with("place_order 201"))
        .filter_map(|(_, link)| link["operationId"].as_str())
        .collect();
    for target in ["get_order", "capture_payment", "refund_payment", "ship_order", "get_payments"] {
        assert!(from_placing.contains(&target), "no link from a placed order to {target}");
    }
    assert!(links.iter().any(
        |(from, link)| from.starts_with("dead_letters 200") && link["operationId"] == "redrive"
    ));
    Ok(())
}
