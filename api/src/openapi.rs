//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` annotations
//! as the router is assembled (utoipa-axum), so a route cannot exist without being
//! described. What every route of a kind shares — the bearer scheme, 401/403/429/503/500
//! on the API, 400/413/415/422 on command bodies — is added here once, from the same
//! table of access levels the router uses.

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Spec, Ref, ResponseBuilder};
use utoipa::OpenApi;

use crate::error::{FieldProblem, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Order ledger",
        description = "Event-sourced order ledger: commands are validated against the order \
            rebuilt from an append-only PostgreSQL event store; committed events are published \
            to Kafka and projected into the payments and notifications read models.\n\n\
            Authenticate with `Authorization: Bearer <token>`: `read` tokens query, `write` \
            tokens also submit commands, `admin` tokens also operate. Money is integer minor \
            units of the order's ISO 4217 currency. Every error is `application/problem+json` \
            with a stable `code`."
    ),
    tags(
        (name = "commands", description = "Change an order (write access)"),
        (name = "queries", description = "Read orders and read models (read access)"),
        (name = "operations", description = "Health, metrics and administration (admin access under /v1/admin)"),
    ),
    // `ItemRequest` is named by the items schema of `shapes::items`, which utoipa cannot
    // follow to register it.
    components(schemas(Problem, FieldProblem, crate::requests::ItemRequest))
)]
struct ApiDoc;

/// The document's skeleton, before the routes add their paths.
pub fn base() -> Spec {
    ApiDoc::openapi()
}

/// Adds what routes share: the security scheme, and the responses of the gate, the limits
/// and the body extractor, to each operation that can give them.
pub fn finish(mut spec: Spec) -> Spec {
    let components = spec.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for (path, item) in spec.paths.paths.iter_mut() {
        let operations = [
            (HttpMethod::Get, item.get.as_mut()),
            (HttpMethod::Post, item.post.as_mut()),
            (HttpMethod::Put, item.put.as_mut()),
            (HttpMethod::Delete, item.delete.as_mut()),
            (HttpMethod::Patch, item.patch.as_mut()),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            if !path.starts_with("/v1/") {
                continue;
            }
            operation.security =
                Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            add(operation, "401", "`unauthorized`: no token, or not one of ours");
            add(operation, "403", "`forbidden`: the token's role may not do this");
            add(
                operation,
                "429",
                "`too_many_requests`: this token has too many requests in flight (Retry-After)",
            );
            add(
                operation,
                "503",
                "`service_unavailable` or `request_timeout`: retry after `Retry-After` seconds",
            );
            add(operation, "500", "`internal_error`: quote the X-Correlation-Id");
            if method == HttpMethod::Get {
                add(operation, "422", "`validation_failed`: a bad path or query parameter");
            }
            if operation.request_body.is_some() {
                add(operation, "400", "`malformed_request`: not JSON, or a malformed header");
                add(operation, "413", "`payload_too_large`: the body exceeds 256 KiB");
                add(
                    operation,
                    "415",
                    "`unsupported_media_type`: send content-type: application/json",
                );
                add(
                    operation,
                    "422",
                    "`validation_failed` naming each bad field, or `idempotency_key_reused`",
                );
            }
        }
    }
    add_links(&mut spec);
    document_rules(&mut spec);
    spec
}

/// Each command's 409 lists the `rule` codes it can answer, from the domain's own list
/// (which the domain's property tests hold `decide` to).
fn document_rules(spec: &mut Spec) {
    for item in spec.paths.paths.values_mut() {
        let Some(operation) = item.post.as_mut() else { continue };
        let rules = domain::rules_of(operation.operation_id.as_deref().unwrap_or_default());
        if rules.is_empty() {
            continue;
        }
        if let Some(utoipa::openapi::RefOr::T(conflict)) =
            operation.responses.responses.get_mut("409")
        {
            let codes: Vec<String> = rules.iter().map(|code| format!("`{code}`")).collect();
            conflict.description =
                format!("{} — `rule` is one of {}", conflict.description, codes.join(", "));
        }
    }
}

/// The operations that use an order, by operation id: what a client (or a stateful
/// tester) can do next with the order a command answered about.
const ORDER_OPERATIONS: &[&str] = &[
    "get_order",
    "get_order_events",
    "get_payment_process",
    "get_payments",
    "capture_payment",
    "record_payment_failure",
    "refund_payment",
    "cancel_order",
    "ship_order",
];
/// The commands' operations are named as the domain names its commands.
const COMMANDS: &[&str] = &domain::COMMAND_NAMES;

/// Links from the responses that name a resource to the operations that take its id, so a
/// client generated from the document (or a stateful tester) walks real lifecycles: every
/// command's 201 to the order's queries and commands (the id from `order_id`, `If-Match`
/// from `stream_version`), a dead-letter list to its re-drive, a notification list to its
/// resend.
fn add_links(spec: &mut Spec) {
    let mut responses = Vec::new();
    for item in spec.paths.paths.values_mut() {
        for operation in [item.get.as_mut(), item.post.as_mut()].into_iter().flatten() {
            let id = operation.operation_id.clone().unwrap_or_default();
            for (status, response) in operation.responses.responses.iter_mut() {
                if let utoipa::openapi::RefOr::T(response) = response {
                    responses.push((id.clone(), status.clone(), response));
                }
            }
        }
    }
    for (operation, status, response) in responses {
        let mut link = |name: &str, target: &str, parameters: &[(&str, &str)]| {
            let mut builder = LinkBuilder::new().operation_id(target);
            for (parameter, value) in parameters {
                builder = builder.parameter(*parameter, *value);
            }
            response.links.insert(name.to_owned(), builder.build().into());
        };
        match (operation.as_str(), status.as_str()) {
            (command, "201") if COMMANDS.contains(&command) => {
                for target in ORDER_OPERATIONS {
                    let mut parameters = vec![("path.id", "$response.body#/order_id")];
                    if COMMANDS.contains(target) {
                        parameters.push(("header.If-Match", "$response.body#/stream_version"));
                    }
                    link(target, target, &parameters);
                }
                link(
                    "list_notifications",
                    "list_notifications",
                    &[
                        ("query.order_id", "$response.body#/order_id"),
                        ("query.min_version", "$response.body#/stream_version"),
                    ],
                );
            }
            ("dead_letters", "200") => {
                link("redrive", "redrive", &[("path.id", "$response.body#/items/0/id")]);
            }
            ("list_notifications", "200") => {
                link("resend", "resend", &[("path.id", "$response.body#/items/0/id")]);
            }
            _ => {}
        }
    }
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", Content::new(Some(Ref::from_schema_name("Problem"))))
        .build();
    operation.responses.responses.insert(status.to_owned(), response.into());
}

/// The document as served: utoipa 5.5 writes a link's `operationId` and `requestBody` in
/// snake case, which no OpenAPI reader understands; they are renamed here.
pub fn to_json(spec: &Spec) -> serde_json::Value {
    let mut json = serde_json::to_value(spec).unwrap_or_default();
    fix_links(&mut json);
    json
}

fn fix_links(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(links)) = map.get_mut("links") {
                for link in links.values_mut() {
                    if let serde_json::Value::Object(link) = link {
                        for (from, to) in [
                            ("operation_id", "operationId"),
                            ("operation_ref", "operationRef"),
                            ("request_body", "requestBody"),
                        ] {
                            if let Some(field) = link.remove(from) {
                                link.insert(to.to_owned(), field);
                            }
                        }
                    }
                }
            }
            map.values_mut().for_each(fix_links);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(fix_links),
        _ => {}
    }
}
