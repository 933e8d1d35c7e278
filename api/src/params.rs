//! The values query parameters take, each a type that checks its own bounds when it is
//! parsed and states them in its schema, so the document and the check cannot drift.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

/// The schema of an integer parameter, from the bounds its parser checks.
macro_rules! bounded_integer {
    ($name:ident, $min:expr, $max:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                let maximum: Option<i64> = $max;
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some($min as f64))
                    .maximum(maximum.map(|max| max as f64))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// Lists answer at most this many items per page.
pub(crate) const MAX_LIMIT: i64 = 500;
pub(crate) const DEFAULT_LIMIT: i64 = 50;
/// Read-your-writes waits at most this long.
pub(crate) const MAX_WAIT_MS: u64 = 5_000;

/// A page size, 1 to 500.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Limit(pub(crate) i64);
bounded_integer!(Limit, 1, Some(MAX_LIMIT));

impl TryFrom<String> for Limit {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .map(Self)
            .ok_or_else(|| format!("must be an integer from 1 to {MAX_LIMIT}"))
    }
}

impl Limit {
    pub(crate) fn or_default(limit: Option<Self>) -> i64 {
        limit.map_or(DEFAULT_LIMIT, |l| l.0)
    }
}

/// An opaque keyset cursor: pass a list's `next_cursor` as it is.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(try_from = "String")]
// Every string this pattern allows is a cursor the API could have returned (at most
// `i64::MAX` in hex), so a client generating one from the schema is never refused.
#[schema(value_type = String, pattern = "^[0-7]?[0-9a-f]{1,15}$")]
pub(crate) struct Cursor(pub(crate) i64);

impl TryFrom<String> for Cursor {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        i64::from_str_radix(&raw, 16)
            .ok()
            .filter(|position| *position >= 0 && !raw.starts_with(['+', '-']))
            .map(Self)
            .ok_or_else(|| "is not a cursor this API returned".to_owned())
    }
}

impl Cursor {
    /// The cursor that continues after `position`.
    pub(crate) fn after(position: i64) -> String {
        format!("{position:x}")
    }
}

/// A point in time, RFC 3339 with a zone (`2026-11-23T10:15:00Z`). Per order, the events
/// appended at or before it; before the first event the answer is empty, a future time
/// gives the current state.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, format = DateTime)]
pub(crate) struct AsOf(pub(crate) DateTime<Utc>);

impl TryFrom<String> for AsOf {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        DateTime::parse_from_rfc3339(&raw)
            .map(|time| Self(time.with_timezone(&Utc)))
            .map_err(|_| "must be an RFC 3339 time, e.g. 2026-11-23T10:15:00Z".to_owned())
    }
}

/// A global position: the events at or below it.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Position(pub(crate) i64);
bounded_integer!(Position, 0, None);

impl TryFrom<String> for Position {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Self)
            .ok_or_else(|| format!("must be an integer from 0 to {}", i64::MAX))
    }
}

/// A stream version, 0 to 2³¹ − 1.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct MinVersion(pub(crate) u32);
bounded_integer!(MinVersion, 0, Some(i64::from(i32::MAX)));

impl TryFrom<String> for MinVersion {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse::<u32>()
            .ok()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Self)
            .ok_or_else(|| format!("must be an integer from 0 to {}", i32::MAX))
    }
}

/// Milliseconds to wait, 0 to 5000.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct WaitMs(pub(crate) u64);
bounded_integer!(WaitMs, 0, i64::try_from(MAX_WAIT_MS).ok());

impl TryFrom<String> for WaitMs {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_WAIT_MS)
            .map(Self)
            .ok_or_else(|| format!("must be an integer from 0 to {MAX_WAIT_MS}"))
    }
}

/// Read-your-writes: `min_version` and how long to wait for it.
pub(crate) fn wait_for(
    min_version: Option<MinVersion>,
    wait_ms: Option<WaitMs>,
) -> Option<(u32, Duration)> {
    min_version.map(|version| (version.0, Duration::from_millis(wait_ms.map_or(0, |w| w.0))))
}
