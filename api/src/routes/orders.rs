//! `/v1/orders`: the six commands, the aggregate's state and its history.

use axum::extract::{Extension, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use uuid::Uuid;

use domain::{evolve, Command, Order, OrderId};

use commands::{CommandContext, CommandRequest, Idempotency, Outcome};

use crate::auth::Principal;
use crate::context::ApiContext;
use crate::correlation::CorrelationId;
use crate::error::{ApiError, Problem};
use crate::extract::{CommandHeaders, JsonBody, OrderIdPath};
use crate::query::{CutQuery, QueryParams};
use crate::requests::{
    CancelOrderRequest, CapturePaymentRequest, IntoCommand, PlaceOrderRequest,
    RecordPaymentFailureRequest, RefundPaymentRequest, ShipOrderRequest,
};
use crate::views::{CommandAccepted, EventView, HistoryView, OrderView};

/// What every command handler has in hand once its body is parsed.
struct Submission {
    order_id: OrderId,
    command: Command,
    headers: CommandHeaders,
    correlation: CorrelationId,
    actor: Option<String>,
    path: String,
    raw_body: axum::body::Bytes,
}

async fn submit(context: &ApiContext, submission: Submission) -> Result<Response, ApiError> {
    // What makes a retry "the same request" for its key: method, path and body.
    let idempotency = submission.headers.idempotency_key.map(|key| {
        let mut fingerprint = format!("{} {}\n", Method::POST, submission.path).into_bytes();
        fingerprint.extend_from_slice(&submission.raw_body);
        Idempotency { key, fingerprint }
    });
    let outcome = context
        .commands
        .execute(CommandRequest {
            order_id: submission.order_id,
            command: submission.command,
            idempotency,
            expected_version: submission.headers.expected_version,
            context: CommandContext {
                correlation_id: submission.correlation.0,
                causation_id: None,
                actor: submission.actor,
                traceparent: submission.headers.trace.map(|trace| trace.to_string()),
            },
        })
        .await?;
    Ok(command_response(submission.order_id, outcome))
}

fn command_response(order_id: OrderId, outcome: Outcome) -> Response {
    let replayed = outcome.replayed;
    let mut http =
        (StatusCode::CREATED, Json(CommandAccepted::from(outcome.accepted))).into_response();
    let headers = http.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{order_id}")) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    http
}

#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "commands",
    summary = "Place an order",
    description = "Records `OrderPlaced` (and `OrderFullyPaid` when the total is zero). The order id may be chosen by the client (then a retry without an Idempotency-Key is refused as `rule_violated` `order_already_placed`) or is minted (UUIDv7).",
    params(CommandHeaders),
    request_body = PlaceOrderRequest,
    responses(
        (status = 201, description = "Placed; `Location` names the order", body = CommandAccepted),
        (status = 409, description = "`rule_violated`: an order with this id exists", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place_order(
    State(context): State<ApiContext>,
    headers: CommandHeaders,
    Extension(correlation): Extension<CorrelationId>,
    principal: Option<Extension<Principal>>,
    uri: Uri,
    body: JsonBody<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let command = body.value.parse(Uuid::now_v7)?;
    let Command::PlaceOrder(place) = &command else {
        return Err(ApiError::internal(anyhow::anyhow!("placing parsed into another command")));
    };
    let order_id = place.order_id();
    let submission = Submission {
        order_id,
        command,
        headers,
        correlation,
        actor: principal.map(|Extension(p)| p.label),
        path: uri.path().to_owned(),
        raw_body: body.raw,
    };
    submit(&context, submission).await
}

/// Any command on an existing order (`/v1/orders/{id}/…`): the body type says which.
async fn order_command<R: IntoCommand>(
    context: ApiContext,
    order_id: OrderId,
    headers: CommandHeaders,
    correlation: CorrelationId,
    principal: Option<Extension<Principal>>,
    uri: Uri,
    body: JsonBody<R>,
) -> Result<Response, ApiError> {
    let command = body.value.into_command()?;
    let submission = Submission {
        order_id,
        command,
        headers,
        correlation,
        actor: principal.map(|Extension(p)| p.label),
        path: uri.path().to_owned(),
        raw_body: body.raw,
    };
    submit(&context, submission).await
}

/// One handler per command route, so each is documented with its own body; they share
/// [`order_command`].
macro_rules! order_command_handler {
    ($(#[$doc:meta])* $name:ident, $request:ty) => {
        $(#[$doc])*
        pub async fn $name(
            State(context): State<ApiContext>,
            OrderIdPath(order_id): OrderIdPath,
            headers: CommandHeaders,
            Extension(correlation): Extension<CorrelationId>,
            principal: Option<Extension<Principal>>,
            uri: Uri,
            body: JsonBody<$request>,
        ) -> Result<Response, ApiError> {
            order_command(context, order_id, headers, correlation, principal, uri, body).await
        }
    };
}

order_command_handler!(
    #[utoipa::path(
        post,
        path = "/v1/orders/{id}/payments",
        tag = "commands",
        summary = "Capture a payment",
        description = "Records `PaymentCaptured`, and `OrderFullyPaid` when the outstanding balance reaches zero.",
        params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
        request_body = CapturePaymentRequest,
        responses(
            (status = 201, description = "Captured", body = CommandAccepted),
            (status = 404, description = "`not_found`: no such order", body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "`rule_violated` or `version_conflict` (If-Match)", body = Problem, content_type = "application/problem+json"),
        )
    )]
    capture_payment,
    CapturePaymentRequest
);

order_command_handler!(
    #[utoipa::path(
        post,
        path = "/v1/orders/{id}/payment-failures",
        tag = "commands",
        summary = "Record a failed payment attempt",
        description = "Records `PaymentFailed`; the balance is unchanged.",
        params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
        request_body = RecordPaymentFailureRequest,
        responses(
            (status = 201, description = "Recorded", body = CommandAccepted),
            (status = 404, description = "`not_found`: no such order", body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "`rule_violated` or `version_conflict` (If-Match)", body = Problem, content_type = "application/problem+json"),
        )
    )]
    record_payment_failure,
    RecordPaymentFailureRequest
);

order_command_handler!(
    #[utoipa::path(
        post,
        path = "/v1/orders/{id}/refunds",
        tag = "commands",
        summary = "Refund (part of) a captured payment",
        description = "Records `PaymentRefunded`. A refund never exceeds what the payment captured less what it already refunded.",
        params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
        request_body = RefundPaymentRequest,
        responses(
            (status = 201, description = "Refunded", body = CommandAccepted),
            (status = 404, description = "`not_found`: no such order", body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "`rule_violated` or `version_conflict` (If-Match)", body = Problem, content_type = "application/problem+json"),
        )
    )]
    refund_payment,
    RefundPaymentRequest
);

order_command_handler!(
    #[utoipa::path(
        post,
        path = "/v1/orders/{id}/cancellation",
        tag = "commands",
        summary = "Cancel an order",
        description = "Records `OrderCancelled`; refused once the order has shipped.",
        params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
        request_body = CancelOrderRequest,
        responses(
            (status = 201, description = "Cancelled", body = CommandAccepted),
            (status = 404, description = "`not_found`: no such order", body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "`rule_violated` or `version_conflict` (If-Match)", body = Problem, content_type = "application/problem+json"),
        )
    )]
    cancel_order,
    CancelOrderRequest
);

order_command_handler!(
    #[utoipa::path(
        post,
        path = "/v1/orders/{id}/shipment",
        tag = "commands",
        summary = "Ship an order",
        description = "Records `OrderShipped`; only a fully paid, open order ships.",
        params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
        request_body = ShipOrderRequest,
        responses(
            (status = 201, description = "Shipped", body = CommandAccepted),
            (status = 404, description = "`not_found`: no such order", body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "`rule_violated` or `version_conflict` (If-Match)", body = Problem, content_type = "application/problem+json"),
        )
    )]
    ship_order,
    ShipOrderRequest
);

#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "queries",
    summary = "An order's state",
    description = "The aggregate rebuilt from its events in the event store.",
    params(("id" = Uuid, Path, description = "The order"), CutQuery),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn get_order(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
    QueryParams(query): QueryParams<CutQuery>,
) -> Result<Json<OrderView>, ApiError> {
    let history = load_as_of(&context, order_id, query).await?;
    let Some(last) = history.last() else {
        return Err(ApiError::NotFound("order".to_owned()));
    };
    let mut order = Order::default();
    for recorded in &history {
        order = evolve(order, &recorded.decode()?);
    }
    match order {
        Order::Placed(placed) => {
            Ok(Json(OrderView::new(&placed, last.stream_version, last.global_position)))
        }
        Order::Unplaced => Err(ApiError::NotFound("order".to_owned())),
    }
}

#[utoipa::path(
    get,
    path = "/v1/orders/{id}/events",
    tag = "queries",
    summary = "An order's history",
    description = "Every event of the order in stream order, with its metadata.",
    params(("id" = Uuid, Path, description = "The order"), CutQuery),
    responses(
        (status = 200, description = "The history", body = HistoryView),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn get_order_events(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
    QueryParams(query): QueryParams<CutQuery>,
) -> Result<Json<HistoryView>, ApiError> {
    let history = load_as_of(&context, order_id, query).await?;
    if history.is_empty() {
        return Err(ApiError::NotFound("order".to_owned()));
    }
    Ok(Json(HistoryView {
        order_id: order_id.as_uuid(),
        events: history.into_iter().map(EventView::from).collect(),
    }))
}

/// The order's events inside the requested cut, once the cut is settled (see
/// `eventstore::settle`). Before the order's first event the history is empty: the order
/// did not exist yet, which the handlers answer 404.
async fn load_as_of(
    context: &ApiContext,
    order_id: OrderId,
    query: CutQuery,
) -> Result<Vec<eventstore::RecordedEvent>, ApiError> {
    let cut = query.cut()?;
    let client = context.store().client().await?;
    let cut = eventstore::settle(&client, cut).await?;
    Ok(eventstore::load_stream(&client, order_id.as_uuid(), cut).await?)
}
