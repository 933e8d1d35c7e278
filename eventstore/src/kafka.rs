//! Kafka client settings shared by the relay and the projection workers, and topic
//! creation (the broker may not auto-create topics; Tansu does not).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;

/// The order events topic, before the prefix.
pub const ORDERS_TOPIC: &str = "ledger.orders.v1";
/// Where messages that cannot be processed are parked.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Prepended to every topic name (tenants and tests share a broker).
    pub topic_prefix: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `security.protocol`, `sasl.*` and `ssl.ca.location` for secured clusters; passed
    /// through to librdkafka unchanged when set.
    pub security_protocol: Option<String>,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    pub ssl_ca_location: Option<String>,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>, topic_prefix: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: topic_prefix.into(),
            partitions: 8,
            replication_factor: 1,
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
        }
    }

    pub fn orders_topic(&self) -> String {
        format!("{}{ORDERS_TOPIC}", self.topic_prefix)
    }

    pub fn dead_letter_topic(&self) -> String {
        format!("{}{DEAD_LETTER_SUFFIX}", self.orders_topic())
    }

    /// The common client configuration: brokers and security.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        let optional = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ];
        for (key, value) in optional {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                config.set(key, value);
            }
        }
        config
    }

    /// Creates the orders and dead-letter topics if missing. Existing topics are left as
    /// they are (partition counts are never changed behind an operator's back).
    pub async fn ensure_topics(&self) -> Result<(), rdkafka::error::KafkaError> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let orders = self.orders_topic();
        let dead_letters = self.dead_letter_topic();
        let replication = || TopicReplication::Fixed(self.replication_factor);
        let topics = [
            NewTopic::new(&orders, self.partitions, replication()),
            NewTopic::new(&dead_letters, self.partitions, replication()),
        ];
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&topics, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(rdkafka::error::KafkaError::AdminOp(code)).inspect_err(|_| {
                        tracing::warn!(%topic, ?code, "could not create topic");
                    })
                }
            }
        }
        Ok(())
    }
}
