//! Authentication and roles: `Authorization: Bearer <token>`; `read` queries (the workers'
//! status included), `write` also submits commands, `admin` also operates (re-drives,
//! resends, rebuilds). No or an unknown token is 401, too weak a role 403, both
//! problem+json, and a refused command writes nothing.

use clap::Parser;
use ledger_tests::{
    client_with_token, expect_json, expect_status, TestApp, ADMIN_TOKEN, READ_TOKEN, WRITE_TOKEN,
};
use reqwest::Response;
use serde_json::json;
use uuid::Uuid;

/// Sends `method path` (with a place-order body for POSTs) with `token`.
async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
) -> anyhow::Result<Response> {
    let http = client_with_token(token)?;
    let request = match method {
        "POST" => http.post(app.url(path)).json(&TestApp::order_body(Uuid::now_v7(), "cus_auth")),
        _ => http.get(app.url(path)),
    };
    Ok(request.send().await?)
}

async fn expect_problem(response: Response, status: u16, code: &str) -> anyhow::Result<()> {
    let content_type = response.headers().get("content-type").cloned();
    let body = expect_json(response, status).await?;
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    Ok(())
}

#[tokio::test]
async fn requests_without_a_known_token_are_401_and_write_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_auth").await?;
    let routes = [
        ("POST", "/v1/orders".to_owned()),
        ("GET", format!("/v1/orders/{order_id}")),
        ("GET", "/v1/payments".to_owned()),
        ("GET", "/v1/admin/relay".to_owned()),
    ];
    for (method, path) in &routes {
        for token in [None, Some("not-a-token-of-ours"), Some("")] {
            let response = call(&app, token, method, path).await?;
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{method} {path}");
            expect_problem(response, 401, "unauthorized").await?;
        }
    }
    // Other schemes and a bare token are not bearer credentials.
    for header in [format!("Basic {WRITE_TOKEN}"), WRITE_TOKEN.to_owned()] {
        let response = reqwest::Client::new()
            .post(app.url("/v1/orders"))
            .header("authorization", header)
            .json(&TestApp::order_body(Uuid::now_v7(), "cus_auth"))
            .send()
            .await?;
        expect_problem(response, 401, "unauthorized").await?;
    }
    assert_eq!(app.event_count().await?, 1, "only the authorised placement was stored");
    Ok(())
}

#[tokio::test]
async fn each_role_may_do_what_it_grants_and_no_more() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_roles").await?;
    let query = format!("/v1/orders/{order_id}");

    let redrive = "/v1/admin/dead-letters/1/redrive";
    let rebuild = "/v1/admin/projections/payments/rebuild";

    // read: queries and the workers' status, no commands, no operations.
    expect_status(call(&app, Some(READ_TOKEN), "GET", &query).await?, 200).await?;
    let refused = call(&app, Some(READ_TOKEN), "POST", "/v1/orders").await?;
    expect_problem(refused, 403, "forbidden").await?;
    for status in ["/v1/admin/relay", "/v1/admin/projections", "/v1/admin/dead-letters"] {
        expect_status(call(&app, Some(READ_TOKEN), "GET", status).await?, 200).await?;
    }
    for action in [redrive, rebuild] {
        expect_problem(call(&app, Some(READ_TOKEN), "POST", action).await?, 403, "forbidden")
            .await?;
    }

    // write: commands and queries, not operations.
    expect_status(call(&app, Some(WRITE_TOKEN), "POST", "/v1/orders").await?, 201).await?;
    expect_status(call(&app, Some(WRITE_TOKEN), "GET", &query).await?, 200).await?;
    for action in [redrive, rebuild] {
        expect_problem(call(&app, Some(WRITE_TOKEN), "POST", action).await?, 403, "forbidden")
            .await?;
    }

    // admin: everything (no dead letter 1 to re-drive: refused as such, not forbidden).
    expect_status(call(&app, Some(ADMIN_TOKEN), "POST", "/v1/orders").await?, 201).await?;
    expect_status(call(&app, Some(ADMIN_TOKEN), "GET", &query).await?, 200).await?;
    expect_status(call(&app, Some(ADMIN_TOKEN), "GET", "/v1/admin/dead-letters").await?, 200)
        .await?;
    expect_problem(call(&app, Some(ADMIN_TOKEN), "POST", redrive).await?, 404, "not_found").await?;

    // Each may ask who it is.
    for (token, access) in [(READ_TOKEN, "read"), (WRITE_TOKEN, "write"), (ADMIN_TOKEN, "admin")] {
        let session =
            expect_json(call(&app, Some(token), "GET", "/v1/session").await?, 200).await?;
        assert_eq!(session["access"], access, "{session}");
        assert_eq!(session["principal"], format!("{access}#1"));
    }

    assert_eq!(app.event_count().await?, 3, "the refused placement wrote nothing");
    Ok(())
}

#[tokio::test]
async fn health_metrics_and_the_api_description_need_no_token() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let anonymous = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        let response = anonymous.get(app.url(path)).send().await?;
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn the_principal_is_recorded_as_the_actor_of_the_events_it_caused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let writer = client_with_token(Some(WRITE_TOKEN))?;
    let order_id = Uuid::now_v7();
    let placed = writer
        .post(app.url("/v1/orders"))
        .json(&TestApp::order_body(order_id, "cus_actor"))
        .send()
        .await?;
    expect_status(placed, 201).await?;
    let history = app.history(order_id).await?;
    assert_eq!(history["events"][0]["metadata"]["actor"], "write#1");
    assert!(
        !history.to_string().contains(WRITE_TOKEN),
        "the token itself is never stored: {history}"
    );
    Ok(())
}

#[tokio::test]
async fn the_ledger_refuses_to_start_without_tokens_unless_told_to_run_open() -> anyhow::Result<()>
{
    let database = ledger_tests::TestDatabase::create().await?;
    let args = |extra: &[&str]| {
        let mut args = vec!["serve", "--database-url", &database.url, "--http-addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        ledger::config::ServeArgs::try_parse_from(args)
    };

    let refused = args(&["--roles", "api"])?.settings();
    let message = refused.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(message.contains("no API tokens configured"), "{message}");

    let malformed = args(&["--api-tokens", "root:abcdefgh"])?.settings();
    let message = malformed.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(message.contains("unknown role `root`"), "{message}");

    // Explicitly open: anyone may do anything.
    let settings = args(&["--roles", "api", "--insecure-no-auth"])?.settings()?;
    let open = ledger::Application::build(settings).await?;
    let address = open.local_addr()?;
    let server = tokio::spawn(open.run(std::future::pending()));
    let response = reqwest::Client::new()
        .post(format!("http://{address}/v1/orders"))
        .json(&json!({
            "customer_id": "cus_open", "customer_email": "open@example.com", "currency": "EUR",
            "items": [{ "sku": "BOOK-1", "quantity": 1, "unit_price_minor": 100 }]
        }))
        .send()
        .await?;
    expect_status(response, 201).await?;
    // Without a token, the caller is an anonymous admin (the console then skips sign-in).
    let session = reqwest::get(format!("http://{address}/v1/session")).await?;
    let session = expect_json(session, 200).await?;
    assert_eq!(session, json!({ "principal": "anonymous", "access": "admin" }));
    server.abort();
    Ok(())
}
