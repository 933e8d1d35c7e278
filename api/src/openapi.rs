//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` annotations
//! as the router is assembled (utoipa-axum), so a route cannot exist without being
//! described. What every route of a kind shares — the bearer scheme, 401/403/429/503/500
//! on the API, 400/413/415/422 on command bodies — is added here once, from the same
//! table of access levels the router uses.

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
    components(schemas(Problem, FieldProblem))
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
    spec
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
