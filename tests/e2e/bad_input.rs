//! Bad input gets a clear `application/problem+json` error with a stable code that names
//! the field, and loses nothing: the store is unchanged after every case.

use ledger_tests::{pluck, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

struct Case {
    name: &'static str,
    path: String,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// A field the problem must name, if any.
    field: Option<&'static str>,
}

fn case(
    name: &'static str,
    path: &str,
    body: Value,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        path: path.to_owned(),
        content_type: Some("application/json"),
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
        status,
        code,
        field,
    }
}

fn order_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut body = TestApp::order_body(Uuid::now_v7(), "cus_bad");
    change(&mut body);
    body
}

fn item(sku: &str, quantity: Value, unit_price_minor: Value) -> Value {
    json!({ "sku": sku, "quantity": quantity, "unit_price_minor": unit_price_minor })
}

fn cases(order_id: Uuid) -> Vec<Case> {
    let orders = "/v1/orders";
    let payments = format!("/v1/orders/{order_id}/payments");
    let refunds = format!("/v1/orders/{order_id}/refunds");
    let capture =
        |amount: Value| json!({ "payment_id": "pay_1", "amount_minor": amount, "method": "card" });
    let mut cases = vec![
        Case {
            name: "malformed JSON",
            body: b"{\"customer_id\": ".to_vec(),
            ..case("", orders, json!(null), 400, "malformed_request", None)
        },
        Case {
            name: "trailing garbage",
            body: format!("{} {{}}", order_with(|_| {})).into_bytes(),
            ..case("", orders, json!(null), 400, "malformed_request", None)
        },
        Case {
            name: "no content type",
            content_type: None,
            ..case("", orders, order_with(|_| {}), 415, "unsupported_media_type", None)
        },
        Case {
            name: "text/plain",
            content_type: Some("text/plain"),
            ..case("", orders, order_with(|_| {}), 415, "unsupported_media_type", None)
        },
        case("a JSON array", orders, json!([1, 2]), 422, "validation_failed", Some("body")),
        case(
            "unknown field",
            orders,
            order_with(|b| {
                b["colour"] = json!("red");
            }),
            422,
            "validation_failed",
            Some("colour"),
        ),
        case(
            "unknown item field",
            orders,
            order_with(|b| {
                b["items"][0]["discount"] = json!(5);
            }),
            422,
            "validation_failed",
            Some("items[0].discount"),
        ),
        case(
            "missing field",
            orders,
            order_with(|b| {
                b.as_object_mut().map(|o| o.remove("currency"));
            }),
            422,
            "validation_failed",
            Some("currency"),
        ),
        case(
            "wrong type",
            orders,
            order_with(|b| {
                b["items"][0]["quantity"] = json!("two");
            }),
            422,
            "validation_failed",
            Some("items[0].quantity"),
        ),
        case(
            "null",
            orders,
            order_with(|b| {
                b["customer_id"] = json!(null);
            }),
            422,
            "validation_failed",
            Some("customer_id"),
        ),
        case(
            "fractional amount",
            orders,
            order_with(|b| {
                b["items"][0]["unit_price_minor"] = json!(12.5);
            }),
            422,
            "validation_failed",
            Some("items[0].unit_price_minor"),
        ),
        case(
            "overflowing amount",
            orders,
            order_with(|b| {
                b["items"][0]["unit_price_minor"] = json!(u64::MAX);
            }),
            422,
            "validation_failed",
            Some("items[0].unit_price_minor"),
        ),
        case(
            "negative unit price",
            orders,
            order_with(|b| {
                b["items"][0]["unit_price_minor"] = json!(-1);
            }),
            422,
            "validation_failed",
            Some("items[0].unit_price_minor"),
        ),
        case(
            "unit price above the limit",
            orders,
            order_with(|b| {
                b["items"][0]["unit_price_minor"] = json!(1_000_000_001);
            }),
            422,
            "validation_failed",
            Some("items[0].unit_price_minor"),
        ),
        case(
            "zero quantity",
            orders,
            order_with(|b| {
                b["items"][1]["quantity"] = json!(0);
            }),
            422,
            "validation_failed",
            Some("items[1].quantity"),
        ),
        case(
            "quantity above the limit",
            orders,
            order_with(|b| {
                b["items"][0]["quantity"] = json!(10_001);
            }),
            422,
            "validation_failed",
            Some("items[0].quantity"),
        ),
        case(
            "unknown currency",
            orders,
            order_with(|b| {
                b["currency"] = json!("XYZ");
            }),
            422,
            "validation_failed",
            Some("currency"),
        ),
        case(
            "lower-case currency",
            orders,
            order_with(|b| {
                b["currency"] = json!("eur");
            }),
            422,
            "validation_failed",
            Some("currency"),
        ),
        case(
            "no items",
            orders,
            order_with(|b| {
                b["items"] = json!([]);
            }),
            422,
            "validation_failed",
            Some("items"),
        ),
        case(
            "101 items",
            orders,
            order_with(|b| {
                b["items"] = Value::Array(
                    (0..101).map(|n| item(&format!("SKU-{n}"), json!(1), json!(1))).collect(),
                );
            }),
            422,
            "validation_failed",
            Some("items"),
        ),
        case(
            "duplicate SKU",
            orders,
            order_with(|b| {
                b["items"][1]["sku"] = json!("BOOK-1");
            }),
            422,
            "validation_failed",
            Some("items[1].sku"),
        ),
        case(
            "overlong SKU",
            orders,
            order_with(|b| {
                b["items"][0]["sku"] = json!("S".repeat(65));
            }),
            422,
            "validation_failed",
            Some("items[0].sku"),
        ),
        case(
            "overlong customer id",
            orders,
            order_with(|b| {
                b["customer_id"] = json!("c".repeat(65));
            }),
            422,
            "validation_failed",
            Some("customer_id"),
        ),
        case(
            "bad email",
            orders,
            order_with(|b| {
                b["customer_email"] = json!("not-an-email");
            }),
            422,
            "validation_failed",
            Some("customer_email"),
        ),
        case(
            "sales channel with capitals and spaces",
            orders,
            order_with(|b| {
                b["sales_channel"] = json!("Point of Sale");
            }),
            422,
            "validation_failed",
            Some("sales_channel"),
        ),
        case(
            "bad order id in body",
            orders,
            order_with(|b| {
                b["order_id"] = json!("order-1");
            }),
            422,
            "validation_failed",
            Some("order_id"),
        ),
        case(
            "invalid UUID in path",
            "/v1/orders/not-a-uuid/payments",
            capture(json!(100)),
            422,
            "validation_failed",
            Some("order_id"),
        ),
        case(
            "negative capture",
            &payments,
            capture(json!(-100)),
            422,
            "validation_failed",
            Some("amount_minor"),
        ),
        case(
            "zero capture",
            &payments,
            capture(json!(0)),
            422,
            "validation_failed",
            Some("amount_minor"),
        ),
        case(
            "overflowing capture",
            &payments,
            capture(json!(i64::MAX)),
            422,
            "validation_failed",
            Some("amount_minor"),
        ),
        case(
            "overlong reason",
            &refunds,
            json!({ "refund_id": "re_1", "payment_id": "pay_1", "amount_minor": 1, "reason": "r".repeat(501) }),
            422,
            "validation_failed",
            Some("reason"),
        ),
        case(
            "blank reason",
            &format!("/v1/orders/{order_id}/cancellation"),
            json!({ "reason": "  " }),
            422,
            "validation_failed",
            Some("reason"),
        ),
        case(
            "overlong tracking number",
            &format!("/v1/orders/{order_id}/shipment"),
            json!({ "carrier": "DHL", "tracking_number": "T".repeat(101) }),
            422,
            "validation_failed",
            Some("tracking_number"),
        ),
        Case {
            name: "body over 256 KiB",
            body: format!("{{\"customer_id\": \"{}\"}}", "x".repeat(300 * 1024)).into_bytes(),
            ..case("", orders, json!(null), 413, "payload_too_large", None)
        },
        Case {
            name: "bad If-Match",
            headers: vec![("if-match", "\"three\"".to_owned())],
            ..case(
                "",
                &payments,
                capture(json!(100)),
                400,
                "malformed_request",
                Some("header.if-match"),
            )
        },
        Case {
            name: "overlong Idempotency-Key",
            headers: vec![("idempotency-key", "k".repeat(256))],
            ..case(
                "",
                &payments,
                capture(json!(100)),
                400,
                "malformed_request",
                Some("header.idempotency-key"),
            )
        },
        Case {
            name: "stale If-Match",
            headers: vec![("if-match", "\"7\"".to_owned())],
            ..case("", &payments, capture(json!(100)), 409, "version_conflict", None)
        },
        case("unknown route", "/v1/nowhere", json!({}), 404, "not_found", None),
    ];
    for case in &mut cases {
        if case.name.is_empty() {
            case.name = "unnamed";
        }
    }
    cases
}

#[tokio::test]
async fn every_bad_request_gets_a_problem_and_changes_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_bad").await?;
    let events_before = app.event_count().await?;

    for case in cases(order_id) {
        let mut request = app.post(&case.path).body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await?;
        assert_eq!(status, case.status, "{}: {text}", case.name);
        assert_eq!(content_type, "application/problem+json", "{}", case.name);
        let problem: Value = serde_json::from_str(&text)?;
        assert_eq!(problem["code"], case.code, "{}: {text}", case.name);
        assert_eq!(problem["status"], case.status, "{}", case.name);
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", case.name);
        if let Some(field) = case.field {
            let fields: Vec<String> = pluck(&problem, "errors", "field");
            assert!(
                fields.iter().any(|f| f == field),
                "{}: expected field {field} in {fields:?}",
                case.name
            );
        }
    }

    assert_eq!(app.event_count().await?, events_before, "no bad request wrote anything");
    assert_eq!(app.idempotency_record_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_wrong_method_is_a_problem_too() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let response = app.http.delete(app.url("/v1/orders")).send().await?;
    assert_eq!(response.status().as_u16(), 405);
    let problem: Value = response.json().await?;
    assert_eq!(problem["code"], "method_not_allowed");
    Ok(())
}

/// JSON Schema counts `1000.0` as an integer, and so does the API; `1000.5` is not one.
#[tokio::test]
async fn an_integer_written_with_a_zero_fraction_is_an_integer() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_fraction").await?;
    let url = format!("/v1/orders/{order_id}/payments");
    let body =
        |amount: Value| json!({ "payment_id": "pay_1", "amount_minor": amount, "method": "card" });
    let halfway = app.post(&url).json(&body(json!(1000.5))).send().await?;
    assert_eq!(halfway.status(), 422);
    let problem: Value = halfway.json().await?;
    assert_eq!(problem["errors"][0]["field"], "amount_minor", "{problem}");
    let whole = app.post(&url).json(&body(json!(1000.0))).send().await?;
    assert_eq!(whole.status(), 201);
    let order = app.order(order_id).await?;
    assert_eq!(order["captured_minor"], 1000);
    Ok(())
}
