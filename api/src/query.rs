//! Query strings, parsed strictly into one typed struct per endpoint, which is also what
//! the OpenAPI document describes (`IntoParams`): an unknown parameter, a repeated one or a
//! bad value is `422 validation_failed` naming it, never silently ignored. The values are
//! the newtypes of [`crate::params`], which check their own bounds.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::{CustomerId, OrderId, ValidationError};
use eventstore::Cut;
use projections::notifications::NotificationStatus;
use projections::payments::PaymentStatus;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::field_of;
use crate::params::{AsOf, Cursor, Limit, MinVersion, Position, WaitMs};

/// A query string parsed into `T`.
pub(crate) struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = form_urlencoded::parse(query.as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        serde_path_to_error::deserialize(deserializer).map(QueryParams).map_err(|error| {
            let path = error.path().to_string();
            let message = error.into_inner().to_string();
            ApiError::validation(ValidationError::new(field_of(&path, &message), message))
        })
    }
}

/// The point-in-time cut of a query: `as_of`, `at_position`, both (the events inside
/// both), or the latest state when neither is given.
pub(crate) fn cut(as_of: Option<AsOf>, at_position: Option<Position>) -> Result<Cut, ApiError> {
    match (as_of, at_position) {
        (Some(time), Some(position)) => Ok(Cut::Both(position.0, time.0)),
        (Some(time), None) => Ok(Cut::Time(time.0)),
        (None, Some(position)) => Ok(Cut::Position(position.0)),
        (None, None) => Ok(Cut::Latest),
    }
}

/// A point in time, for a query of the order's own state or history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CutQuery {
    /// Answer as of this time (see the schema). With `at_position` too, the events inside both.
    #[param(inline)]
    pub(crate) as_of: Option<AsOf>,
    /// Answer as of this global position. With `as_of` too, the events inside both.
    #[param(inline)]
    pub(crate) at_position: Option<Position>,
}

impl CutQuery {
    pub(crate) fn cut(self) -> Result<Cut, ApiError> {
        cut(self.as_of, self.at_position)
    }
}

/// One order's payments: read-your-writes, or a point in time.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PaymentQuery {
    /// Read-your-writes: wait until the projection has applied this stream version of the
    /// order.
    #[param(inline)]
    pub(crate) min_version: Option<MinVersion>,
    /// How long to wait for `min_version` (default 0).
    #[param(inline)]
    pub(crate) wait_ms: Option<WaitMs>,
    /// Answer as of this time (see the schema). With `at_position` too, the events inside both.
    #[param(inline)]
    pub(crate) as_of: Option<AsOf>,
    /// Answer as of this global position. With `as_of` too, the events inside both.
    #[param(inline)]
    pub(crate) at_position: Option<Position>,
}

/// A page of orders' payments.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PaymentListQuery {
    /// Only this customer's orders.
    #[param(value_type = Option<String>, min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub(crate) customer_id: Option<CustomerId>,
    /// Only orders in this status.
    #[param(inline)]
    pub(crate) status: Option<PaymentStatus>,
    /// `next_cursor` of the previous page.
    #[param(inline)]
    pub(crate) cursor: Option<Cursor>,
    /// Page size (default 50).
    #[param(inline)]
    pub(crate) limit: Option<Limit>,
    /// `oldest` first (placement order, the default) or `newest` first.
    #[param(inline)]
    pub(crate) order: Option<ListOrder>,
    /// Answer as of this time (see the schema). With `at_position` too, the events inside both.
    #[param(inline)]
    pub(crate) as_of: Option<AsOf>,
    /// Answer as of this global position. With `as_of` too, the events inside both.
    #[param(inline)]
    pub(crate) at_position: Option<Position>,
}

/// Which end of a list comes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ListOrder {
    #[default]
    Oldest,
    Newest,
}

/// A page of notifications.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct NotificationListQuery {
    /// Only this customer's.
    #[param(value_type = Option<String>, min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub(crate) customer_id: Option<CustomerId>,
    /// Only this order's.
    #[param(value_type = Option<uuid::Uuid>)]
    pub(crate) order_id: Option<OrderId>,
    /// Only notifications in this delivery status.
    #[param(inline)]
    pub(crate) status: Option<NotificationStatus>,
    /// `next_cursor` of the previous page.
    #[param(inline)]
    pub(crate) cursor: Option<Cursor>,
    /// Page size (default 50).
    #[param(inline)]
    pub(crate) limit: Option<Limit>,
    /// Read-your-writes (needs `order_id`).
    #[param(inline)]
    pub(crate) min_version: Option<MinVersion>,
    /// How long to wait for `min_version` (default 0).
    #[param(inline)]
    pub(crate) wait_ms: Option<WaitMs>,
    /// Answer as of this time (see the schema). With `at_position` too, the events inside both.
    #[param(inline)]
    pub(crate) as_of: Option<AsOf>,
    /// Answer as of this global position. With `as_of` too, the events inside both.
    #[param(inline)]
    pub(crate) at_position: Option<Position>,
}
