//! `/v1/orders`: the six commands, the aggregate's state and its history.

use axum::extract::{Extension, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use uuid::Uuid;

use domain::{evolve, Command, Order, OrderId};
use eventstore::Cut;

use crate::commands::{self, CommandRequest, CommandResponse};
use crate::correlation::CorrelationId;
use crate::error::ApiError;
use crate::extract::{CommandHeaders, JsonBody, OrderIdPath};
use crate::requests::{IntoCommand, PlaceOrderRequest};
use crate::routes::ApiContext;
use crate::views::{EventView, HistoryView, OrderView};

/// What every command handler has in hand once its body is parsed.
struct Submission {
    order_id: OrderId,
    command: Command,
    headers: CommandHeaders,
    correlation: CorrelationId,
    path: String,
    raw_body: axum::body::Bytes,
}

async fn submit(context: &ApiContext, submission: Submission) -> Result<Response, ApiError> {
    let mut fingerprint = format!("{} {}\n", Method::POST, submission.path).into_bytes();
    fingerprint.extend_from_slice(&submission.raw_body);
    let response = commands::execute(
        &context.store,
        CommandRequest {
            order_id: submission.order_id,
            command: submission.command,
            idempotency_key: submission.headers.idempotency_key,
            expected_version: submission.headers.expected_version,
            correlation_id: submission.correlation.0,
            fingerprint,
        },
    )
    .await?;
    Ok(command_response(submission.order_id, response))
}

fn command_response(order_id: OrderId, response: CommandResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::CREATED);
    let mut http = (status, response.body).into_response();
    let headers = http.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{order_id}")) {
        headers.insert(header::LOCATION, location);
    }
    if response.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    http
}

pub async fn place_order(
    State(context): State<ApiContext>,
    headers: CommandHeaders,
    Extension(correlation): Extension<CorrelationId>,
    uri: Uri,
    body: JsonBody<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let command = body.value.parse(Uuid::now_v7)?;
    let Command::PlaceOrder(place) = &command else {
        return Err(ApiError::internal(anyhow::anyhow!("placing parsed into another command")));
    };
    let order_id = place.order_id;
    let path = uri.path().to_owned();
    let submission =
        Submission { order_id, command, headers, correlation, path, raw_body: body.raw };
    submit(&context, submission).await
}

/// Any command on an existing order (`/v1/orders/{id}/…`): the body type says which.
pub async fn order_command<R: IntoCommand>(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
    headers: CommandHeaders,
    Extension(correlation): Extension<CorrelationId>,
    uri: Uri,
    body: JsonBody<R>,
) -> Result<Response, ApiError> {
    let command = body.value.into_command()?;
    let path = uri.path().to_owned();
    let submission =
        Submission { order_id, command, headers, correlation, path, raw_body: body.raw };
    submit(&context, submission).await
}

#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn get_order(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
) -> Result<Json<OrderView>, ApiError> {
    let history = context.store.load(order_id.as_uuid(), Cut::Latest).await?;
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

#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn get_order_events(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
) -> Result<Json<HistoryView>, ApiError> {
    let history = context.store.load(order_id.as_uuid(), Cut::Latest).await?;
    if history.is_empty() {
        return Err(ApiError::NotFound("order".to_owned()));
    }
    Ok(Json(HistoryView {
        order_id: order_id.as_uuid(),
        events: history.into_iter().map(EventView::from).collect(),
    }))
}
