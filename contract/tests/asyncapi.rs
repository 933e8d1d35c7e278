//! The AsyncAPI document: version 3.0.0, every `$ref` resolves inside it, and the channel
//! names are the ones the bus adapters use.

use bus::Channels;
use contract::compat::resolve_pointer;
use contract::{asyncapi, AsyncApiOptions};
use serde_json::Value;

/// Every `$ref` in `value`, with where it was found.
fn refs<'v>(value: &'v Value, at: String, found: &mut Vec<(String, &'v str)>) {
    match value {
        Value::Object(object) => {
            for (name, child) in object {
                match (name.as_str(), child) {
                    ("$ref", Value::String(target)) => found.push((at.clone(), target)),
                    _ => refs(child, format!("{at}/{name}"), found),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

fn assert_refs_resolve(document: &Value, name: &str) {
    let mut found = Vec::new();
    refs(document, String::new(), &mut found);
    assert!(!found.is_empty(), "{name} has references");
    let broken: Vec<_> =
        found.iter().filter(|(_, target)| resolve_pointer(document, target).is_none()).collect();
    assert!(broken.is_empty(), "unresolved $refs in {name}: {broken:?}");
}

#[test]
fn every_ref_resolves_inside_the_document() {
    let options = AsyncApiOptions { prefix: "t1.".to_owned(), ..AsyncApiOptions::default() };
    assert_refs_resolve(&asyncapi(&options), "asyncapi");
    assert_refs_resolve(&asyncapi(&AsyncApiOptions::default()), "asyncapi (default)");
    for file in contract::schemas() {
        let mut found = Vec::new();
        refs(&file.schema, String::new(), &mut found);
        for (at, target) in found {
            assert!(resolve_pointer(&file.schema, target).is_some(), "{}{at}: {target}", file.path);
        }
    }
}

#[test]
fn is_asyncapi_3_with_servers_channels_and_operations() {
    let document = asyncapi(&AsyncApiOptions::default());
    assert_eq!(document["asyncapi"], "3.0.0");
    for server in ["kafka", "nats", "amqp"] {
        assert!(document["servers"][server]["host"].is_string(), "server {server}");
    }
    assert_eq!(document["servers"]["amqp"]["pathname"], "/%2f");
    for (id, operation) in document["operations"].as_object().into_iter().flatten() {
        assert!(["send", "receive"].contains(&operation["action"].as_str().unwrap_or("")), "{id}");
        assert!(operation["messages"].as_array().is_some_and(|m| !m.is_empty()), "{id}");
    }
    let messages = document["components"]["messages"].as_object().map_or(0, |m| m.len());
    assert_eq!(
        messages,
        contract::event_schemas().len() + 1,
        "one per event version + dead letter"
    );
    let description = document["info"]["description"].as_str().unwrap_or("");
    for promise in ["At least once", "event_id", "(stream_id, stream_version)", "FNV-1a"] {
        assert!(description.contains(promise), "the guarantees mention {promise}");
    }
}

#[test]
fn channel_names_are_the_bus_channels_for_the_prefix() {
    let options = AsyncApiOptions {
        prefix: "t1.".to_owned(),
        kafka_brokers: "k1:9092,k2:9092".to_owned(),
        amqp_url: "amqp://guest:secret@rabbit:5672/%2f".to_owned(),
        ..AsyncApiOptions::default()
    };
    let channels = Channels::new("t1.");
    let document = asyncapi(&options);
    let c = &document["channels"];
    assert_eq!(c["orders.kafka"]["address"], channels.orders().as_str());
    assert_eq!(c["orders.kafka"]["bindings"]["kafka"]["partitions"], 8);
    assert_eq!(c["deadLetters.kafka"]["address"], channels.dead_letters().as_str());
    let nats = c["orders.nats"]["address"].as_str().unwrap_or_default();
    for p in 0..8 {
        assert_eq!(nats.replace("{partition}", &p.to_string()), channels.partition(p));
    }
    assert!(c["orders.nats"]["description"].as_str().unwrap_or("").contains(&channels.stream()));
    assert_eq!(c["deadLetters.nats"]["address"], channels.dead_letters().as_str());
    let exchange = &c["orders.amqp"]["bindings"]["amqp"]["exchange"];
    assert_eq!(exchange["name"], channels.orders().as_str());
    assert_eq!(exchange["type"], "direct");
    assert_eq!(
        c["deadLetters.amqp"]["bindings"]["amqp"]["exchange"]["name"],
        channels.dead_letters().as_str()
    );
    assert!(document["servers"]["kafka2"].is_object(), "one server per broker");
    assert_eq!(document["servers"]["amqp"]["host"], "rabbit:5672", "no credentials");
    assert!(!contract::render(&document).contains("secret"));
}
