//! The adapter's settings as flags and environment variables, for the `ledger` binary
//! and the bench alike.

use std::time::Duration;

use bus::Channels;
use clap::{value_parser, Args};

use crate::settings::{
    KafkaSettings, DEFAULT_BROKERS, DEFAULT_FETCH_WAIT_MS, DEFAULT_MESSAGE_TIMEOUT_MS,
    DEFAULT_PARTITIONS, DEFAULT_REPLICATION,
};

#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BROKERS", default_value = DEFAULT_BROKERS)]
    pub kafka_brokers: String,
    /// Prefix of every channel name, so tenants and tests can share a broker.
    #[arg(long, env = "LEDGER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
    /// Partitions of the topics the ledger creates when they are missing.
    #[arg(long, env = "LEDGER_TOPIC_PARTITIONS", default_value_t = DEFAULT_PARTITIONS,
          value_parser = value_parser!(i32).range(1..))]
    pub topic_partitions: i32,
    /// Replication factor of the topics the ledger creates (3 on a production cluster).
    #[arg(long, env = "LEDGER_TOPIC_REPLICATION", default_value_t = DEFAULT_REPLICATION,
          value_parser = value_parser!(i32).range(1..))]
    pub topic_replication: i32,
    /// How long the topics the ledger creates keep messages (`retention.ms`).
    #[arg(long, env = "LEDGER_TOPIC_RETENTION", default_value = "7d", value_parser = bus::parse_duration)]
    pub topic_retention: Duration,
    /// `min.insync.replicas` of the topics the ledger creates (default: one less than the
    /// replication factor when that is more than one, else the broker's).
    #[arg(long, env = "LEDGER_TOPIC_MIN_INSYNC_REPLICAS", value_parser = value_parser!(i32).range(1..))]
    pub topic_min_insync_replicas: Option<i32>,
    /// librdkafka `security.protocol` (plaintext, ssl, sasl_plaintext, sasl_ssl).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,
    /// librdkafka `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,
    /// CA bundle to verify the brokers' certificates.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<String>,
    /// How long a message may wait for the broker before the relay's batch is retried.
    #[arg(long, env = "LEDGER_RELAY_MESSAGE_TIMEOUT_MS", default_value_t = DEFAULT_MESSAGE_TIMEOUT_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub relay_message_timeout_ms: u64,
    /// How long the broker may hold a consumer's fetch that finds nothing (librdkafka
    /// `fetch.wait.max.ms`): long on Kafka, which answers as soon as data arrives; short
    /// on a broker that does not (Tansu), where it bounds the delay of a new event.
    #[arg(long, env = "LEDGER_KAFKA_FETCH_WAIT_MS", default_value_t = DEFAULT_FETCH_WAIT_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub kafka_fetch_wait_ms: u64,
}

impl KafkaArgs {
    /// Settings that cannot work together, named by their variables.
    pub fn check(&self) -> Result<(), String> {
        match self.topic_min_insync_replicas {
            Some(replicas) if replicas > self.topic_replication => Err(format!(
                "LEDGER_TOPIC_MIN_INSYNC_REPLICAS (--topic-min-insync-replicas) is {replicas}, \
                 more than LEDGER_TOPIC_REPLICATION ({}): no write could ever be acknowledged",
                self.topic_replication
            )),
            _ => Ok(()),
        }
    }

    pub fn settings(&self) -> KafkaSettings {
        let mut settings = KafkaSettings::new(
            self.kafka_brokers.clone(),
            Channels::new(self.topic_prefix.clone()),
        );
        settings.partitions = self.topic_partitions;
        settings.replication_factor = self.topic_replication;
        settings.retention = self.topic_retention;
        settings.min_insync_replicas = self.topic_min_insync_replicas;
        settings.message_timeout = Duration::from_millis(self.relay_message_timeout_ms);
        settings.fetch_wait = Duration::from_millis(self.kafka_fetch_wait_ms);
        settings.security_protocol = self.kafka_security_protocol.clone();
        settings.sasl_mechanism = self.kafka_sasl_mechanism.clone();
        settings.sasl_username = self.kafka_sasl_username.clone();
        settings.sasl_password = self.kafka_sasl_password.clone();
        settings.ssl_ca_location = self.kafka_ssl_ca_location.clone();
        settings
    }
}
