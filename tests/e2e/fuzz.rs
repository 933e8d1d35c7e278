//! A fuzz-style sweep of malformed requests against a live `ledger` process: mutated
//! bodies of every command, bad headers, bad paths and query strings, wrong methods.
//!
//! Whatever a client sends, the ledger answers: never a 5xx, and every refusal is an
//! `application/problem+json` body with a stable string `code` a client can match on.
//!
//! Two parts: a systematic corpus (every bad path segment, content type, header, query
//! parameter and method on every route it applies to, about 1 200 requests), then a few
//! hundred random mutations of valid commands. Deterministic: the random part comes from a
//! seeded generator; the seed is printed, `FUZZ_SEED` (decimal or 0x-hex) runs
//! another sweep and `FUZZ_CASES` sets its size. A status of 0 in the printed figures is
//! an oversized body whose 413 was lost to a connection reset (see `send`).

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_tests::process::ADMIN_TOKEN;
use ledger_tests::{LedgerConfig, LedgerProcess, TestDatabase};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const DEFAULT_SEED: u64 = 0x5eed_1ed9_e2f0_22c3;
const DEFAULT_CASES: usize = 400;
/// The ledger's request body limit (256 KiB).
const BODY_LIMIT: usize = 256 * 1024;

#[tokio::test]
async fn malformed_requests_never_get_a_5xx_and_every_refusal_is_problem_json() -> anyhow::Result<()>
{
    let seed = env_number("FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let count = env_number("FUZZ_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let database = TestDatabase::create().await?;
    let mut ledger = LedgerProcess::start(LedgerConfig::new(&database.url)?).await?;
    let outcome = sweep(&ledger, seed, count).await;
    ledger.explain(outcome)
}

async fn sweep(ledger: &LedgerProcess, seed: u64, count: usize) -> anyhow::Result<()> {
    let mut rng = Seeded::new(seed);
    // An order that exists, so commands on it get past "not found" into the deeper paths.
    let order_id = rng.uuid();
    let placed =
        ledger.http.post(ledger.url("/v1/orders")).json(&valid_order(order_id)).send().await?;
    anyhow::ensure!(placed.status() == 201, "placing the fuzz order: {}", placed.status());

    let corpus = corpus(&mut rng, order_id);
    let systematic = corpus.len();
    let random = (0..count).map(|_| generate(&mut rng, order_id)).collect::<Vec<_>>();
    // A plain client: the cases choose their own Authorization header, or none.
    // A connection per case: a case the server answers and then closes on (an oversized
    // body) must not fail the next case that would have reused it.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()?;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut offences = Vec::new();
    let started = std::time::Instant::now();
    for (n, case) in corpus.iter().chain(&random).enumerate() {
        match send(&http, ledger, case).await {
            Ok(status) => *statuses.entry(status).or_insert(0) += 1,
            Err(offence) => offences.push(format!("case {n} {}: {offence}", case.describe())),
        }
    }
    eprintln!(
        "fuzz sweep: seed={seed:#x} systematic={systematic} random={count} offending={} \
         statuses={statuses:?} in {:.1?}",
        offences.len(),
        started.elapsed()
    );
    for offence in offences.iter().take(5) {
        eprintln!("  {offence}");
    }
    assert!(
        offences.is_empty(),
        "{} of {} malformed requests (seed {seed:#x}) were not answered with a 4xx \
         problem+json; the first: {}",
        offences.len(),
        systematic + count,
        offences[0]
    );
    Ok(())
}

/// Sends one case; the status if the answer is acceptable, else what is wrong with it.
async fn send(http: &reqwest::Client, ledger: &LedgerProcess, case: &Case) -> Result<u16, String> {
    let mut request = http.request(case.method.clone(), ledger.url(&case.path));
    for (name, value) in &case.headers {
        let value = reqwest::header::HeaderValue::from_bytes(value)
            .map_err(|error| format!("the case built an unsendable header: {error}"))?;
        request = request.header(name.as_str(), value);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = match request.send().await {
        Ok(response) => response,
        // The server answers 413 before the body has arrived and closes the connection;
        // the unread rest makes the kernel reset it, which can discard the answer before
        // the client reads it (RFC 9112 section 9.6). Counted as status 0; nothing else
        // may go unanswered.
        Err(_) if case.body.as_ref().is_some_and(|b| b.len() > BODY_LIMIT) => return Ok(0),
        Err(error) => return Err(format!("no answer: {error:#}")),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = response.bytes().await.map_err(|error| format!("body lost: {error:#}"))?;
    let shown = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status >= 500 {
        return Err(format!("answered {status} {content_type:?}: {}", shown()));
    }
    if status >= 400 {
        if content_type.as_deref() != Some("application/problem+json") {
            return Err(format!("answered {status} as {content_type:?}: {}", shown()));
        }
        // A HEAD answer has no body to check.
        if case.method != Method::HEAD {
            let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if !problem["code"].is_string() {
                return Err(format!("answered {status} without a string code: {}", shown()));
            }
        }
    }
    Ok(status)
}

struct Case {
    /// What was done to the request, for the failure message.
    mutation: String,
    method: Method,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

impl Case {
    /// A valid command: JSON body, admin token.
    fn command(path: String, body: &Value) -> Self {
        Self {
            mutation: String::new(),
            method: Method::POST,
            path,
            headers: vec![
                ("authorization".to_owned(), format!("Bearer {ADMIN_TOKEN}").into_bytes()),
                ("content-type".to_owned(), b"application/json".to_vec()),
            ],
            body: Some(body.to_string().into_bytes()),
        }
    }

    fn query(path: String) -> Self {
        Self {
            mutation: String::new(),
            method: Method::GET,
            path,
            headers: vec![(
                "authorization".to_owned(),
                format!("Bearer {ADMIN_TOKEN}").into_bytes(),
            )],
            body: None,
        }
    }

    fn set_header(&mut self, name: &str, value: Option<Vec<u8>>) {
        self.headers.retain(|(n, _)| n != name);
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value));
        }
    }

    fn describe(&self) -> String {
        let body = self.body.as_deref().map(|b| {
            let shown = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
            format!(" body ({} bytes) {shown:?}", b.len())
        });
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(&v[..v.len().min(60)]).into_owned();
                format!("{n}: {v:?}")
            })
            .collect();
        let path: String = self.path.chars().take(200).collect();
        format!(
            "[{}] {} {path} headers [{}]{}",
            self.mutation,
            self.method,
            headers.join(", "),
            body.unwrap_or_default()
        )
    }
}

fn valid_order(order_id: Uuid) -> Value {
    json!({
        "order_id": order_id,
        "customer_id": "cus_fuzz",
        "customer_email": "fuzz@example.com",
        "currency": "EUR",
        "items": [
            { "sku": "BOOK-1", "quantity": 2, "unit_price_minor": 1250 },
            { "sku": "PEN-7", "quantity": 1, "unit_price_minor": 500 }
        ]
    })
}

/// A valid body for the command at `path` (any path; unknown ones get a cancellation's).
fn body_for(path: &str, new_order: Uuid) -> Value {
    let suffix = path.rsplit('/').next().unwrap_or_default();
    match suffix {
        "orders" => valid_order(new_order),
        "payments" => json!({ "payment_id": "pay_1", "amount_minor": 100, "method": "card" }),
        "payment-failures" => {
            json!({ "payment_id": "pay_2", "amount_minor": 100, "reason": "declined" })
        }
        "refunds" => {
            json!({ "refund_id": "re_1", "payment_id": "pay_1", "amount_minor": 50, "reason": "r" })
        }
        "shipment" => json!({ "carrier": "DHL", "tracking_number": "JD0140000001" }),
        _ => json!({ "reason": "changed my mind" }),
    }
}

/// Every command as a path and a valid body; a new order id for placing.
fn commands(order_id: Uuid, new_order: Uuid) -> Vec<(String, Value)> {
    ["", "/payments", "/payment-failures", "/refunds", "/cancellation", "/shipment"]
        .iter()
        .map(|suffix| {
            let path = match *suffix {
                "" => "/v1/orders".to_owned(),
                suffix => format!("/v1/orders/{order_id}{suffix}"),
            };
            let body = body_for(&path, new_order);
            (path, body)
        })
        .collect()
}

fn any_command(rng: &mut Seeded, order_id: Uuid) -> (String, Value) {
    let new_order = rng.uuid();
    let all = commands(order_id, new_order);
    rng.take(all)
}

/// Route templates with the method each takes (`{id}` is replaced).
fn templates() -> Vec<(&'static str, Method)> {
    vec![
        ("/v1/orders/{id}", Method::GET),
        ("/v1/orders/{id}/events", Method::GET),
        ("/v1/orders/{id}/payments", Method::POST),
        ("/v1/orders/{id}/payment-failures", Method::POST),
        ("/v1/orders/{id}/refunds", Method::POST),
        ("/v1/orders/{id}/cancellation", Method::POST),
        ("/v1/orders/{id}/shipment", Method::POST),
        ("/v1/payments/{id}", Method::GET),
        ("/v1/customers/{id}/balance", Method::GET),
        ("/v1/admin/dead-letters/{id}/redrive", Method::POST),
        ("/v1/admin/projections/{id}/rebuild", Method::POST),
        ("/v1/orders/{id}/unknown", Method::GET),
        ("/v1/orders/{id}/payments/{id}", Method::POST),
        ("/v2/orders/{id}", Method::GET),
        ("/v1/ORDERS/{id}", Method::GET),
        ("//v1//orders//{id}", Method::GET),
        ("/v1/orders%2F{id}", Method::GET),
        ("/v1/orders/{id}/../../admin/relay", Method::GET),
    ]
}

/// Path segments that are not what the route expects.
fn junk_ids(order_id: Uuid) -> Vec<String> {
    let mut ids: Vec<String> = [
        "not-a-uuid",
        "%00",
        "%FF%FE",
        "..%2F..%2Fetc%2Fpasswd",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "%7B00000000-0000-0000-0000-000000000000%7D",
        "0000000000000000000000000000000",
        "-1",
        "99999999999999999999",
        "1e3",
        "null",
        "%C3%A9",
        "%E2%80%AE",
        "%20",
        "a%2Fb",
        "%25",
        "%",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    ids.push("9".repeat(5_000));
    ids.extend(["x", "%00", "%2F", ".json"].iter().map(|suffix| format!("{order_id}{suffix}")));
    ids
}

fn content_types() -> Vec<Option<&'static [u8]>> {
    vec![
        None,
        Some(b""),
        Some(b"text/plain"),
        Some(b"application/x-www-form-urlencoded"),
        Some(b"multipart/form-data; boundary=x"),
        Some(b"application/"),
        Some(b"+json"),
        Some(b"application/xml"),
        Some(b"application/json, text/plain"),
        Some(b"application/json; charset=latin1"),
        Some(b"APPLICATION/JSON"),
        Some(b"application/problem+json"),
        Some(b"json"),
        Some(b"application/\xff\xfe"),
        Some(b"application/json;;;;"),
    ]
}

/// Bad values of the headers every command reads.
fn bad_headers() -> Vec<(&'static str, Option<Vec<u8>>)> {
    let long = |n: usize| Some("k".repeat(n).into_bytes());
    let mut headers: Vec<(&'static str, Option<Vec<u8>>)> = Vec::new();
    let mut add = |name: &'static str, values: &[&[u8]]| {
        headers.extend(values.iter().map(|v| (name, Some(v.to_vec()))));
    };
    add("idempotency-key", &[b"", b" ", b"has space", b"caf\xc3\xa9", b"\xff\xfe", b"\t"]);
    add(
        "if-match",
        &[
            b"garbage",
            b"\"\"",
            b"\"-1\"",
            b"\"4294967296\"",
            b"\"99999999999999999999\"",
            b"W/\"1\"",
            b"*",
            b"1",
            b"\"1\", \"2\"",
            b"\"\xff\"",
            b"\"0\"",
        ],
    );
    add(
        "authorization",
        &[
            b"",
            b"Bearer",
            b"Bearer ",
            b"Bearer wrong",
            b"Basic Zm9vOmJhcg==",
            b"bearer fault-admin",
            b"Bearer fault-read",
            b"Bearer  fault-admin",
            b"Bearer \xff\xfe",
        ],
    );
    add("x-correlation-id", &[b"", b"with space", b"\xe2\x80\xae\xff", b"<script>"]);
    headers.extend([
        ("idempotency-key", long(256)),
        ("idempotency-key", long(10_000)),
        ("authorization", Some([&b"Bearer "[..], &"t".repeat(10_000).into_bytes()].concat())),
        ("authorization", None),
        ("x-correlation-id", long(129)),
        ("x-correlation-id", long(5_000)),
    ]);
    headers
}

fn query_routes(order_id: Uuid) -> Vec<String> {
    vec![
        format!("/v1/orders/{order_id}"),
        format!("/v1/orders/{order_id}/events"),
        format!("/v1/payments/{order_id}"),
        "/v1/payments".to_owned(),
        "/v1/customers/cus_fuzz/balance".to_owned(),
        "/v1/notifications".to_owned(),
        "/v1/admin/dead-letters".to_owned(),
        "/v1/admin/projections".to_owned(),
        "/v1/admin/relay".to_owned(),
    ]
}

/// Never a valid `min_version` with a wait: without projection workers that would wait
/// and answer a legitimate 504 `projection_lagging`, and the request is not malformed.
const BAD_PARAMS: &[&str] = &[
    "limit=-1",
    "limit=0",
    "limit=501",
    "limit=abc",
    "limit=99999999999999999999",
    "limit=1.5",
    "limit=",
    "cursor=zz",
    "cursor=-1",
    "cursor=%FF",
    "cursor=7fffffffffffffff0",
    "as_of=notatime",
    "as_of=2020-13-45T99:99:99Z",
    "as_of=",
    "at_position=-5",
    "at_position=abc",
    "at_position=99999999999999999999",
    "min_version=-1",
    "min_version=abc",
    "min_version=2147483648",
    "min_version=",
    "wait_ms=-1",
    "wait_ms=99999",
    "wait_ms=abc",
    "status=lost",
    "status=",
    "customer_id=",
    "customer_id=ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
    "customer_id=%00",
    "order_id=notauuid",
    "order_id=",
    "colour=red",
    "%FF=%FE",
    "a=1&a=2",
    "limit=1&limit=2",
    "&&&",
    "=",
    "limit",
    "%",
    "%%%%",
    "+++",
];

fn method_routes(order_id: Uuid) -> Vec<String> {
    vec![
        "/v1/orders".to_owned(),
        format!("/v1/orders/{order_id}"),
        format!("/v1/orders/{order_id}/events"),
        format!("/v1/orders/{order_id}/payments"),
        format!("/v1/orders/{order_id}/shipment"),
        format!("/v1/payments/{order_id}"),
        "/v1/payments".to_owned(),
        "/v1/notifications".to_owned(),
        "/v1/admin/projections".to_owned(),
        "/v1/admin/dead-letters/1/redrive".to_owned(),
        "/healthz".to_owned(),
        "/metrics".to_owned(),
    ]
}

const WRONG_METHODS: &[&str] =
    &["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"];

/// Every bad path, content type, header, query parameter and method, on every route it
/// applies to: the systematic part of the sweep, the same on every run.
fn corpus(rng: &mut Seeded, order_id: Uuid) -> Vec<Case> {
    let mut cases = Vec::new();
    for (template, method) in templates() {
        for id in junk_ids(order_id) {
            let path = template.replace("{id}", &id);
            let mut case = if method == Method::POST {
                Case::command(path.clone(), &body_for(&path, rng.uuid()))
            } else {
                Case::query(path)
            };
            case.mutation = format!("path {template} with id {:?}", &id[..id.len().min(40)]);
            cases.push(case);
        }
    }
    for (path, body) in commands(order_id, rng.uuid()) {
        for content_type in content_types() {
            let mut case = Case::command(path.clone(), &body);
            case.mutation = format!("content-type {:?}", content_type.map(String::from_utf8_lossy));
            case.set_header("content-type", content_type.map(<[u8]>::to_vec));
            cases.push(case);
        }
        for (name, value) in bad_headers() {
            let mut case = Case::command(path.clone(), &body);
            case.mutation = match &value {
                Some(v) => format!("{name} {:?}", String::from_utf8_lossy(&v[..v.len().min(40)])),
                None => format!("no {name}"),
            };
            case.set_header(name, value);
            cases.push(case);
        }
    }
    for route in query_routes(order_id) {
        for param in BAD_PARAMS {
            let mut case = Case::query(format!("{route}?{param}"));
            case.mutation = format!("query {param}");
            cases.push(case);
        }
    }
    for route in method_routes(order_id) {
        for method in WRONG_METHODS {
            cases.push(with_method(Case::query(route.clone()), method));
        }
    }
    cases
}

/// The random part: mutations of valid requests, drawn from the seeded generator.
fn generate(rng: &mut Seeded, order_id: Uuid) -> Case {
    match rng.below(100) {
        0..=39 => mutated_value(rng, order_id),
        40..=69 => mutated_bytes(rng, order_id),
        70..=84 => several_bad_headers(rng, order_id),
        85..=94 => several_bad_params(rng, order_id),
        _ => {
            let (path, body) = any_command(rng, order_id);
            let method = *rng.pick(WRONG_METHODS);
            with_method(Case::command(path, &body), method)
        }
    }
}

fn with_method(mut case: Case, method: &str) -> Case {
    case.method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::PATCH);
    // HEAD and TRACE requests carry no body.
    if matches!(method, "HEAD" | "TRACE") {
        case.body = None;
        case.set_header("content-type", None);
    }
    case.mutation = format!("method {method}");
    case
}

/// Well-formed JSON of the wrong shape: a field removed, added or given a junk value.
fn mutated_value(rng: &mut Seeded, order_id: Uuid) -> Case {
    let (path, mut body) = any_command(rng, order_id);
    let mut paths = Vec::new();
    collect_paths(&body, &mut Vec::new(), &mut paths);
    let target = rng.take(paths);
    let mutation = match rng.below(4) {
        0 => {
            remove_at(&mut body, &target);
            format!("removed {}", show_path(&target))
        }
        1 => {
            let name = *rng.pick(&["colour", "amount", "ORDER_ID", "", "__proto__", "é"]);
            let junk = junk_value(rng);
            insert_beside(&mut body, &target, name, junk.clone());
            format!("added {name:?} beside {} = {}", show_path(&target), short(&junk))
        }
        2 => {
            let junk = junk_value(rng);
            let shown = short(&junk);
            replace_at(&mut body, &target, junk);
            format!("{} = {shown}", show_path(&target))
        }
        _ => {
            let items = match rng.below(5) {
                0 => json!([]),
                1 => Value::Array(
                    (0..101)
                        .map(|n| json!({"sku": format!("S-{n}"), "quantity": 1, "unit_price_minor": 1}))
                        .collect(),
                ),
                2 => json!([{ "sku": "A", "quantity": 1, "unit_price_minor": 1 },
                            { "sku": "A", "quantity": 1, "unit_price_minor": 1 }]),
                3 => json!([{ "sku": "A", "quantity": 10001, "unit_price_minor": 1_000_000_001 }]),
                _ => json!([null, 1, "x", [], {}]),
            };
            let shown = short(&items);
            if let Value::Object(fields) = &mut body {
                fields.insert("items".to_owned(), items);
            }
            format!("items = {shown}")
        }
    };
    Case { mutation, ..Case::command(path, &body) }
}

/// Bytes that are not the JSON they claim to be.
fn mutated_bytes(rng: &mut Seeded, order_id: Uuid) -> Case {
    let (path, body) = any_command(rng, order_id);
    let valid = body.to_string().into_bytes();
    let (mutation, bytes): (&str, Vec<u8>) = match rng.below(16) {
        0 => {
            let cut = rng.below(valid.len());
            ("truncated", valid[..cut].to_vec())
        }
        1 => {
            // Invalid UTF-8 inside the last string value.
            let mut bytes = valid.clone();
            let quote = bytes.iter().rposition(|b| *b == b'"').unwrap_or(0);
            let choices: [&[u8]; 3] = [&[0xff, 0xfe], &[0xc3, 0x28], &[0xed, 0xa0, 0x80]];
            let junk = *rng.pick(&choices);
            bytes.splice(quote..quote, junk.iter().copied());
            ("invalid UTF-8 in a string", bytes)
        }
        2 => ("empty", Vec::new()),
        3 => {
            let depth = *rng.pick(&[129, 1_000, 20_000]);
            let mut bytes = b"{\"reason\":".to_vec();
            bytes.extend(std::iter::repeat_n(b'[', depth));
            bytes.extend(std::iter::repeat_n(b']', depth));
            bytes.push(b'}');
            ("deeply nested", bytes)
        }
        4 => {
            let depth = *rng.pick(&[200, 50_000]);
            let bytes = std::iter::once(b'{').chain(std::iter::repeat_n(b'[', depth)).collect();
            ("unclosed nesting", bytes)
        }
        5 => ("BOM first", [&[0xef, 0xbb, 0xbf][..], &valid].concat()),
        6 => ("trailing garbage", [&valid[..], b"}}garbage"].concat()),
        7 => ("two documents", [&valid[..], b" ", &valid].concat()),
        8 => {
            ("NUL bytes", [&valid[..valid.len() / 2], b"\0\0", &valid[valid.len() / 2..]].concat())
        }
        9 => {
            let raw = *rng.pick(&["null", "[]", "\"order\"", "123", "-1", "true", "{", "}", "{}"]);
            ("not an object", raw.as_bytes().to_vec())
        }
        10 => {
            let raw = *rng.pick(&[
                r#"{"amount_minor": 1e400}"#,
                r#"{"amount_minor": NaN}"#,
                r#"{"amount_minor": -0}"#,
                r#"{"amount_minor": 9223372036854775808}"#,
                r#"{"amount_minor": -9223372036854775809}"#,
                r#"{"amount_minor": 0x10}"#,
                r#"{"reason": 'single quotes'}"#,
                r#"{reason: "unquoted key"}"#,
                r#"{"reason": "a", "reason": "b"}"#,
                r#"{"reason": "a",}"#,
                r#"{"reason": "\ud800"}"#,
                r#"{"reason": "\u00"}"#,
                "{\"reason\": \"tab\tinside\"}",
                "/* comment */ {\"reason\": \"x\"}",
            ]);
            ("hand-written JSON", raw.as_bytes().to_vec())
        }
        11 => {
            // Above the 256 KiB limit.
            let filler = "x".repeat(BODY_LIMIT + 40 * 1024);
            ("over the size limit", json!({ "reason": filler }).to_string().into_bytes())
        }
        12 => {
            let text = String::from_utf8_lossy(&valid).into_owned();
            let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
            ("UTF-16", utf16)
        }
        13 => ("form encoded", b"reason=changed&carrier=DHL".to_vec()),
        14 => {
            let mut bytes = valid.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] = (rng.next() & 0xff) as u8;
            }
            ("random bytes flipped", bytes)
        }
        _ => {
            let len = rng.below(64);
            ("random bytes", (0..len).map(|_| (rng.next() & 0xff) as u8).collect())
        }
    };
    Case { mutation: mutation.to_owned(), body: Some(bytes), ..Case::command(path, &body) }
}

/// A valid command with two or three bad headers at once, some given twice.
fn several_bad_headers(rng: &mut Seeded, order_id: Uuid) -> Case {
    let (path, body) = any_command(rng, order_id);
    let mut case = Case::command(path, &body);
    let mut mutations = Vec::new();
    for _ in 0..2 + rng.below(2) {
        let (name, value) = rng.take(bad_headers());
        if rng.below(4) == 0 {
            if let Some(value) = &value {
                case.headers.push((name.to_owned(), value.clone()));
                mutations.push(format!("{name} added twice"));
                continue;
            }
        }
        mutations.push(format!("{name} {:?}", value.as_deref().map(String::from_utf8_lossy)));
        case.set_header(name, value);
    }
    case.mutation = mutations.join(", ");
    case
}

/// A query route with two or three bad parameters.
fn several_bad_params(rng: &mut Seeded, order_id: Uuid) -> Case {
    let route = rng.take(query_routes(order_id));
    let params: Vec<&str> = (0..2 + rng.below(2)).map(|_| *rng.pick(BAD_PARAMS)).collect();
    let query = params.join("&");
    let mut case = Case::query(format!("{route}?{query}"));
    case.mutation = format!("query {query}");
    case
}

fn junk_value(rng: &mut Seeded) -> Value {
    match rng.below(22) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(i64::MAX),
        5 => json!(i64::MIN),
        6 => json!(u64::MAX),
        7 => json!(1.5),
        8 => json!(1e300),
        9 => json!(-0.0),
        10 => json!(""),
        11 => json!(" "),
        12 => json!("x".repeat(10_000)),
        13 => json!("💥\u{202e}ℌ\u{0}\u{feff}"),
        14 => json!("\u{1F4A9}".repeat(100)),
        15 => json!([]),
        16 => json!({}),
        17 => json!([1, 2, 3]),
        18 => json!({ "amount_minor": 1 }),
        19 => json!("100"),
        20 => {
            let mut nested = json!("deep");
            for _ in 0..100 {
                nested = json!([nested]);
            }
            nested
        }
        _ => json!("<script>alert(1)</script>' OR 1=1 --"),
    }
}

/// Paths (object keys and array indices) of every value in `value`, the root excluded.
fn collect_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(fields) => fields.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        prefix.push(key);
        out.push(prefix.clone());
        collect_paths(child, prefix, out);
        prefix.pop();
    }
}

fn parent_mut<'a>(root: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let (_, parents) = path.split_last()?;
    let mut node = root;
    for key in parents {
        node = match node {
            Value::Object(fields) => fields.get_mut(key)?,
            Value::Array(items) => items.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn remove_at(root: &mut Value, path: &[String]) {
    let Some(last) = path.last() else { return };
    match parent_mut(root, path) {
        Some(Value::Object(fields)) => {
            fields.remove(last);
        }
        Some(Value::Array(items)) => {
            if let Some(index) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(index);
            }
        }
        _ => {}
    }
}

fn replace_at(root: &mut Value, path: &[String], value: Value) {
    let Some(last) = path.last() else { return };
    match parent_mut(root, path) {
        Some(Value::Object(fields)) => {
            fields.insert(last.clone(), value);
        }
        Some(Value::Array(items)) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
}

/// Adds a field to the object that holds `path` (or the root, for array elements).
fn insert_beside(root: &mut Value, path: &[String], name: &str, value: Value) {
    match parent_mut(root, path) {
        Some(Value::Object(fields)) => {
            fields.insert(name.to_owned(), value);
        }
        _ => {
            if let Value::Object(fields) = root {
                fields.insert(name.to_owned(), value);
            }
        }
    }
}

fn show_path(path: &[String]) -> String {
    path.join(".")
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(40).collect()
}

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    }
}

/// Random choices reproducible from the seed (`fastrand`'s generator, seeded).
struct Seeded(fastrand::Rng);

impl Seeded {
    fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        self.0.usize(0..n.max(1))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A random (version 4) UUID, reproducible from the seed.
    fn uuid(&mut self) -> Uuid {
        let bytes = (u128::from(self.next()) << 64 | u128::from(self.next())).to_le_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn take<T>(&mut self, mut items: Vec<T>) -> T {
        let index = self.below(items.len());
        items.swap_remove(index)
    }
}
