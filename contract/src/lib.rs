//! The published event contract: what an outside consumer of the order events can rely on.
//!
//! - [`schemas()`]: the JSON Schema (draft 2020-12) of every event type at every version
//!   still readable, generated from the types that read and write them
//!   (`eventstore::schema::event_schemas`), plus the envelope and the headers;
//! - [`asyncapi()`]: the AsyncAPI 3.0.0 document of the channels on each bus;
//! - [`compat::breaking_changes`]: the gate that keeps a published version's schema from
//!   changing in a way its consumers would notice.
//!
//! Both are committed (`contract/schemas/`, `contract/asyncapi.json`) and a test holds
//! them equal to what the code generates; `UPDATE_CONTRACT=1 cargo test -p contract`
//! rewrites them, except an event version's schema changed in a breaking way, which must
//! become a new version instead.

mod asyncapi;
pub mod compat;
mod schemas;

pub use asyncapi::{asyncapi, AsyncApiOptions, SCHEMA_FORMAT};
pub use schemas::{
    dead_letter_headers_schema, embed, envelope_schema, event_schemas, event_types, headers_schema,
    key, schemas, EventSchema, SchemaFile, DIALECT,
};

/// Every committed file of the contract, by path relative to the `contract` crate, as
/// committed: pretty-printed JSON and a final newline.
pub fn files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = schemas()
        .into_iter()
        .map(|file| (format!("schemas/{}", file.path), render(&file.schema)))
        .collect();
    files.push(("asyncapi.json".to_owned(), render(&asyncapi(&AsyncApiOptions::default()))));
    files
}

/// `value` as committed.
pub fn render(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}
