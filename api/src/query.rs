//! Query-string parameters, parsed strictly: an unknown parameter or a bad value is a 422
//! naming it, never silently ignored.

use std::collections::HashMap;
use std::time::Duration;

use domain::ValidationError;
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// Read-your-writes waits at most this long.
pub const MAX_WAIT: Duration = Duration::from_millis(5_000);

pub struct Params {
    raw: HashMap<String, String>,
    errors: Vec<ValidationError>,
}

impl Params {
    /// `allowed` lists every parameter the endpoint accepts.
    pub fn new(raw: HashMap<String, String>, allowed: &[&str]) -> Self {
        let errors = raw
            .keys()
            .filter(|key| !allowed.contains(&key.as_str()))
            .map(|key| ValidationError::new(key.clone(), "is not a parameter of this endpoint"))
            .collect();
        Self { raw, errors }
    }

    pub fn text(&mut self, name: &str, max: usize) -> Option<String> {
        let value = self.raw.get(name)?;
        if value.is_empty() || value.chars().count() > max {
            self.errors
                .push(ValidationError::new(name, format!("must be 1 to {max} characters long")));
            return None;
        }
        if value.chars().any(char::is_control) {
            self.errors.push(ValidationError::new(name, "must not contain control characters"));
            return None;
        }
        Some(value.clone())
    }

    pub fn one_of(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let value = self.raw.get(name)?;
        if allowed.contains(&value.as_str()) {
            Some(value.clone())
        } else {
            self.errors
                .push(ValidationError::new(name, format!("must be one of {}", allowed.join(", "))));
            None
        }
    }

    pub fn uuid(&mut self, name: &str) -> Option<Uuid> {
        let value = self.raw.get(name)?;
        match Uuid::try_parse(value) {
            Ok(id) => Some(id),
            Err(_) => {
                self.errors.push(ValidationError::new(name, "must be a UUID"));
                None
            }
        }
    }

    pub fn integer(&mut self, name: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let value = self.raw.get(name)?;
        match value.parse::<i64>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.errors.push(ValidationError::new(
                    name,
                    format!("must be an integer from {} to {}", range.start(), range.end()),
                ));
                None
            }
        }
    }

    pub fn limit(&mut self) -> i64 {
        self.integer("limit", 1..=MAX_LIMIT).unwrap_or(DEFAULT_LIMIT)
    }

    /// The point-in-time cut: `as_of=<RFC 3339>` or `at_position=<n>` (not both); the
    /// latest state when neither is given.
    pub fn cut(&mut self) -> eventstore::Cut {
        let as_of = self.raw.get("as_of").cloned();
        let at_position = self.integer("at_position", 0..=i64::MAX);
        match (as_of, at_position) {
            (Some(_), Some(_)) => {
                self.errors.push(ValidationError::new(
                    "as_of",
                    "give either as_of or at_position, not both",
                ));
                eventstore::Cut::Latest
            }
            (Some(text), None) => match chrono::DateTime::parse_from_rfc3339(&text) {
                Ok(time) => eventstore::Cut::Time(time.with_timezone(&chrono::Utc)),
                Err(_) => {
                    self.errors.push(ValidationError::new(
                        "as_of",
                        "must be an RFC 3339 time, e.g. 2026-11-23T10:15:00Z",
                    ));
                    eventstore::Cut::Latest
                }
            },
            (None, Some(position)) => eventstore::Cut::Position(position),
            // A malformed at_position was reported by `integer`.
            (None, None) => eventstore::Cut::Latest,
        }
    }

    /// The opaque keyset cursor of a list (a position, in hex).
    pub fn cursor(&mut self) -> Option<i64> {
        let value = self.raw.get("cursor")?;
        match i64::from_str_radix(value, 16) {
            Ok(position) if position >= 0 => Some(position),
            _ => {
                self.errors
                    .push(ValidationError::new("cursor", "is not a cursor this API returned"));
                None
            }
        }
    }

    /// `min_version` and `wait_ms` of read-your-writes.
    pub fn wait_for(&mut self) -> Option<(u32, Duration)> {
        let version = self.integer("min_version", 0..=i64::from(i32::MAX))?;
        let wait = self.integer("wait_ms", 0..=MAX_WAIT.as_millis() as i64).unwrap_or(0);
        Some((
            u32::try_from(version).unwrap_or(u32::MAX),
            Duration::from_millis(wait.unsigned_abs()),
        ))
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

pub fn cursor_after(position: Option<i64>) -> Option<String> {
    position.map(|p| format!("{p:x}"))
}

/// `as_of` and `at_position`, for the OpenAPI description of every point-in-time query.
pub struct AsOfParams;

impl utoipa::IntoParams for AsOfParams {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{KnownFormat, ObjectBuilder, Required, SchemaFormat, Type};
        vec![
            ParameterBuilder::new()
                .name("as_of")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "Answer as of this time (RFC 3339): per order, the events appended at or \
                     before it. Before the first event the answer is empty; a future time \
                     gives the current state. Not with `at_position`.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
                ))
                .build(),
            ParameterBuilder::new()
                .name("at_position")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "Answer as of this global position: the events at or below it. Not with \
                     `as_of`.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))))
                .build(),
        ]
    }
}
