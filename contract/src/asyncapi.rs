//! The AsyncAPI 3.0.0 document of the order events: the servers and channels on each bus
//! (Kafka, NATS JetStream, RabbitMQ) with their real names for a prefix, one message per
//! event type and version, and the operations (the ledger sends, consumers receive and
//! park what they cannot process on the dead-letter channel).

use bus::envelope::{HEADER_EVENT_TYPE, HEADER_EVENT_VERSION, HEADER_KEY};
use bus::Channels;
use serde_json::{json, Map, Value};

use crate::schemas::{
    dead_letter_headers_schema, embed, envelope_base, event_schemas, headers_schema,
};

/// How messages' payloads and headers are written: JSON Schema 2020-12.
pub const SCHEMA_FORMAT: &str = "application/schema+json;version=draft-2020-12";

/// Where the document says the channels are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncApiOptions {
    /// `LEDGER_TOPIC_PREFIX`: prepended to every channel name.
    pub prefix: String,
    /// `KAFKA_BROKERS`: `host:port`, comma-separated.
    pub kafka_brokers: String,
    /// `LEDGER_NATS_URL`.
    pub nats_url: String,
    /// `LEDGER_RABBITMQ_URL` (credentials are left out of the document).
    pub amqp_url: String,
    /// The partitions of the orders channel (Kafka topic partitions; NATS subjects and
    /// RabbitMQ routing keys per partition).
    pub partitions: u32,
}

impl Default for AsyncApiOptions {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            kafka_brokers: "127.0.0.1:9092".to_owned(),
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            amqp_url: "amqp://127.0.0.1:5672/%2f".to_owned(),
            partitions: 8,
        }
    }
}

const KAFKA_BINDING: &str = "0.5.0";
const AMQP_BINDING: &str = "0.3.0";

const GUARANTEES: &str = "Every event the ledger stores is published, once committed, to the \
orders channel of the configured bus, with the version it was stored at.\n\n\
- **At least once**: a message may be delivered more than once (a relay restart, a \
consumer that fails before acknowledging). Deduplicate by `event_id`, or by \
`(stream_id, stream_version)`.\n\
- **In order per order id**: the events of one order (one `stream_id`) arrive in \
`stream_version` order, 1, 2, 3, … without gaps; a consumer that has applied N and sees N \
again skips it. There is no order between different orders.\n\
- **Key = order id**: Kafka records are keyed by the order id; on NATS and RabbitMQ, the \
`key` header carries it.\n\
- **Versions**: `event_version` names the shape of `data`. A stored event is never \
rewritten: a new shape is a new version (an old one is still published as stored), so \
consumers must accept every version listed here and ignore unknown properties.\n\
- **Dead letters**: a consumer that cannot process a message parks it, unchanged and with \
error headers, on the dead-letter channel, and moves on.";

const PARTITIONING: &str = "On NATS and RabbitMQ, which have no partitions of their own, \
the partition of a message is **FNV-1a (64-bit) of the order id's UTF-8 text (lower-case \
hyphenated UUID), modulo the partition count**, in decimal (offset basis \
0xcbf29ce484222325, prime 0x100000001b3). An outside publisher places messages the same \
way. On Kafka the producer partitions by the record key (the order id).";

/// The AsyncAPI 3.0.0 document for `options`.
pub fn asyncapi(options: &AsyncApiOptions) -> Value {
    let channels = Channels::new(options.prefix.clone());
    let events = event_schemas();
    let keys: Vec<String> = events.iter().map(|e| e.key()).collect();

    let mut schemas = Map::new();
    schemas.insert("Envelope".to_owned(), envelope_base());
    schemas.insert("Headers".to_owned(), component(&headers_schema(), "Headers"));
    schemas.insert(
        "DeadLetterHeaders".to_owned(),
        component(&dead_letter_headers_schema(), "DeadLetterHeaders"),
    );
    let mut messages = Map::new();
    for event in &events {
        let key = event.key();
        schemas.insert(key.clone(), component(&event.schema, &key));
        messages.insert(key.clone(), event_message(event.event_type, event.event_version));
    }
    messages.insert("DeadLetter".to_owned(), dead_letter_message());

    let partition = json!({
        "description": format!(
            "The partition of the message's order id, 0 to {}: {PARTITIONING}",
            options.partitions.saturating_sub(1)
        ),
        "enum": (0..options.partitions.max(1)).map(|p| p.to_string()).collect::<Vec<_>>(),
        "examples": ["0"],
    });
    let event_refs = |channel: &str| -> Vec<Value> {
        keys.iter()
            .map(|key| json!({ "$ref": format!("#/channels/{channel}/messages/{key}") }))
            .collect()
    };
    let channel_messages: Map<String, Value> = keys
        .iter()
        .map(|key| (key.clone(), json!({ "$ref": format!("#/components/messages/{key}") })))
        .collect();
    let dead_letter_messages =
        json!({ "DeadLetter": { "$ref": "#/components/messages/DeadLetter" } });

    let (kafka_servers, servers) = servers(options);
    let kafka_refs: Vec<Value> =
        kafka_servers.iter().map(|name| json!({ "$ref": format!("#/servers/{name}") })).collect();
    let mut all_channels = Map::new();
    all_channels.insert(
        "orders.kafka".to_owned(),
        json!({
            "address": channels.orders(),
            "title": "Orders (Kafka topic)",
            "description": "Every order event, keyed by the order id.",
            "servers": kafka_refs,
            "messages": channel_messages,
            "bindings": { "kafka": {
                "topic": channels.orders(),
                "partitions": options.partitions,
                "bindingVersion": KAFKA_BINDING,
            } },
        }),
    );
    all_channels.insert(
        "deadLetters.kafka".to_owned(),
        json!({
            "address": channels.dead_letters(),
            "title": "Dead letters (Kafka topic)",
            "servers": kafka_refs,
            "messages": dead_letter_messages,
            "bindings": { "kafka": {
                "topic": channels.dead_letters(),
                "partitions": options.partitions,
                "bindingVersion": KAFKA_BINDING,
            } },
        }),
    );
    all_channels.insert(
        "orders.nats".to_owned(),
        json!({
            "address": format!("{}.{{partition}}", channels.orders()),
            "title": "Orders (NATS JetStream subjects)",
            "description": format!(
                "One subject per partition, all in the JetStream stream `{}`; consumer groups \
                 hold one durable consumer per partition.", channels.stream()),
            "servers": [{ "$ref": "#/servers/nats" }],
            "parameters": { "partition": partition },
            "messages": channel_messages,
        }),
    );
    all_channels.insert(
        "deadLetters.nats".to_owned(),
        json!({
            "address": channels.dead_letters(),
            "title": "Dead letters (NATS JetStream subject)",
            "description": format!("In the JetStream stream `{}`.", channels.dead_letter_stream()),
            "servers": [{ "$ref": "#/servers/nats" }],
            "messages": dead_letter_messages,
        }),
    );
    all_channels.insert("orders.amqp".to_owned(), json!({
        "address": "{partition}",
        "title": "Orders (RabbitMQ direct exchange)",
        "description": format!(
            "Published to the direct exchange `{}` with the partition as routing key; \
             consumer groups bind one queue per partition.", channels.orders()),
        "servers": [{ "$ref": "#/servers/amqp" }],
        "parameters": { "partition": partition },
        "messages": channel_messages,
        "bindings": { "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": channels.orders(), "type": "direct", "durable": true, "autoDelete": false,
                "vhost": vhost(&options.amqp_url),
            },
            "bindingVersion": AMQP_BINDING,
        } },
    }));
    all_channels.insert("deadLetters.amqp".to_owned(), json!({
        "address": null,
        "title": "Dead letters (RabbitMQ exchange)",
        "description": format!(
            "Published to the durable fanout exchange `{0}`, bound to the durable queue `{0}`.", channels.dead_letters()),
        "servers": [{ "$ref": "#/servers/amqp" }],
        "messages": dead_letter_messages,
        "bindings": { "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": channels.dead_letters(), "type": "fanout", "durable": true, "autoDelete": false,
                "vhost": vhost(&options.amqp_url),
            },
            "bindingVersion": AMQP_BINDING,
        } },
    }));

    let mut operations = Map::new();
    for bus in ["kafka", "nats", "amqp"] {
        let orders = format!("orders.{bus}");
        let dead_letters = format!("deadLetters.{bus}");
        let mut receive = json!({
            "action": "receive",
            "channel": { "$ref": format!("#/channels/{orders}") },
            "title": format!("Consume the order events ({bus})"),
            "summary": "A consumer group reads every event, in order per order id, at least once.",
            "messages": event_refs(&orders),
        });
        let group = json!({ "type": "string", "description": "One consumer group per consumer." });
        let binding = match bus {
            "kafka" => json!({ "kafka": { "groupId": group, "bindingVersion": KAFKA_BINDING } }),
            "amqp" => json!({ "amqp": { "ack": true, "bindingVersion": AMQP_BINDING } }),
            _ => Value::Null,
        };
        if !binding.is_null() {
            receive["bindings"] = binding;
        }
        operations.insert(
            format!("publishOrders.{bus}"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{orders}") },
                "title": format!("Publish the order events ({bus})"),
                "summary": "The ledger's relay publishes every committed event, in commit order.",
                "messages": event_refs(&orders),
            }),
        );
        operations.insert(format!("consumeOrders.{bus}"), receive);
        operations.insert(
            format!("parkDeadLetter.{bus}"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{dead_letters}") },
                "title": format!("Park a message that cannot be processed ({bus})"),
                "messages": [{ "$ref": format!("#/channels/{dead_letters}/messages/DeadLetter") }],
            }),
        );
    }

    json!({
        "asyncapi": "3.0.0",
        "id": "urn:order-ledger:events",
        "info": {
            "title": "Order ledger events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("{GUARANTEES}\n\n## Partitioning\n\n{PARTITIONING}"),
            "license": { "name": "Apache-2.0" },
        },
        "defaultContentType": "application/json",
        "servers": servers,
        "channels": all_channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "correlationIds": { "correlationId": {
                "description": "The correlation id of the request that caused the event \
                    (`X-Correlation-Id`), absent when there was none.",
                "location": "$message.header#/correlation-id",
            } },
        },
    })
}

/// `schema` placed at `#/components/schemas/{name}`.
fn component(schema: &Value, name: &str) -> Value {
    embed(schema, &format!("/components/schemas/{name}"))
}

fn event_message(event_type: &str, event_version: i16) -> Value {
    let key = crate::schemas::key(event_type, event_version);
    json!({
        "name": event_type,
        "title": format!("{event_type} v{event_version}"),
        "summary": format!("{event_type}, data at version {event_version}."),
        "contentType": "application/json",
        "headers": { "schemaFormat": SCHEMA_FORMAT, "schema": {
            "allOf": [{ "$ref": "#/components/schemas/Headers" }],
            "properties": {
                HEADER_EVENT_TYPE: { "const": event_type },
                HEADER_EVENT_VERSION: { "const": event_version.to_string() },
            },
        } },
        "payload": { "schemaFormat": SCHEMA_FORMAT, "schema": {
            "allOf": [{ "$ref": "#/components/schemas/Envelope" }],
            "properties": {
                "event_type": { "const": event_type },
                "event_version": { "const": event_version },
                "data": { "$ref": format!("#/components/schemas/{key}") },
            },
        } },
        "correlationId": { "$ref": "#/components/correlationIds/correlationId" },
        "bindings": {
            "kafka": { "key": key_schema(), "bindingVersion": KAFKA_BINDING },
        },
    })
}

fn dead_letter_message() -> Value {
    json!({
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "A message its consumer gave up on: the original value, key and headers, \
            plus error headers.",
        "contentType": "application/json",
        "headers": { "schemaFormat": SCHEMA_FORMAT, "schema": {
            "allOf": [
                { "$ref": "#/components/schemas/Headers" },
                { "$ref": "#/components/schemas/DeadLetterHeaders" },
            ],
        } },
        "payload": { "schemaFormat": SCHEMA_FORMAT, "schema": { "$ref": "#/components/schemas/Envelope" } },
        "correlationId": { "$ref": "#/components/correlationIds/correlationId" },
        "bindings": { "kafka": { "key": key_schema(), "bindingVersion": KAFKA_BINDING } },
    })
}

fn key_schema() -> Value {
    json!({
        "description": format!("The order id (the envelope's `stream_id`); the `{HEADER_KEY}` header on NATS and RabbitMQ."),
        "type": "string",
        "format": "uuid",
    })
}

/// The servers object, and the names of the Kafka servers (one per broker).
fn servers(options: &AsyncApiOptions) -> (Vec<String>, Map<String, Value>) {
    let mut servers = Map::new();
    let mut kafka = Vec::new();
    let brokers: Vec<&str> =
        options.kafka_brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
    for (index, broker) in brokers.iter().enumerate() {
        let name = if index == 0 { "kafka".to_owned() } else { format!("kafka{}", index + 1) };
        let (host, _) = host_and_path(broker);
        servers.insert(
            name.clone(),
            json!({
                "host": host, "protocol": "kafka", "title": "Kafka (or a Kafka-compatible broker)",
            }),
        );
        kafka.push(name);
    }
    let (nats_host, _) = host_and_path(&options.nats_url);
    servers.insert(
        "nats".to_owned(),
        json!({
            "host": nats_host, "protocol": "nats", "title": "NATS with JetStream",
        }),
    );
    let (amqp_host, amqp_path) = host_and_path(&options.amqp_url);
    let mut amqp = json!({ "host": amqp_host, "protocol": "amqp", "protocolVersion": "0.9.1", "title": "RabbitMQ" });
    if let Some(path) = amqp_path {
        amqp["pathname"] = json!(path);
    }
    servers.insert("amqp".to_owned(), amqp);
    (kafka, servers)
}

/// `host[:port]` and `/path` of a URL or bare address, without scheme or credentials.
fn host_and_path(url: &str) -> (String, Option<String>) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], Some(&rest[slash..])),
        None => (rest, None),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    (host.to_owned(), path.filter(|p| *p != "/").map(str::to_owned))
}

/// The AMQP virtual host of `url` (`/` when the URL names none).
fn vhost(url: &str) -> String {
    match host_and_path(url).1 {
        Some(path) => path.trim_start_matches('/').replace("%2f", "/").replace("%2F", "/"),
        None => "/".to_owned(),
    }
}
