//! Kafka client settings shared by the publisher and the subscribers, and topic creation
//! (a broker may not auto-create topics; Tansu does not).

use std::time::Duration;

use bus::{BusError, Channels};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;

pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
pub const DEFAULT_PARTITIONS: i32 = 8;
pub const DEFAULT_REPLICATION: i32 = 1;
/// How long the topics the ledger creates keep messages: a week, as the NATS streams do,
/// so a consumer that was away for days (or a new one) still finds them.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);
pub const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 15_000;
pub const DEFAULT_FETCH_WAIT_MS: u64 = 2;

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    pub brokers: String,
    pub channels: Channels,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `retention.ms` of the topics the ledger creates.
    pub retention: Duration,
    /// `min.insync.replicas` of the topics the ledger creates; `None`: one less than the
    /// replication factor when that is more than one (the relay produces with `acks=all`,
    /// so a write survives the loss of any one broker and publishing goes on through it),
    /// the broker's default otherwise.
    pub min_insync_replicas: Option<i32>,
    /// librdkafka `message.timeout.ms`: how long a message may wait for the broker before
    /// its batch is declared failed and retried from the relay's checkpoint.
    pub message_timeout: Duration,
    /// librdkafka `fetch.wait.max.ms` for the consumers: how long the broker may hold a
    /// fetch that finds nothing. A broker that answers a waiting fetch as soon as data
    /// arrives (Kafka) can be given long; Tansu 0.6 holds *every* fetch for the whole wait,
    /// one that found data too (its fetch loop sleeps out the rest of the wait before it
    /// answers), so there each fetch costs the wait, and a short wait costs the broker a
    /// fetch per wait. 2 ms rather than 5: the read models' latency at half the peak p50
    /// 63 → 55 ms, the peak's commands/s unchanged (docs/performance.md).
    pub fetch_wait: Duration,
    /// `security.protocol`, `sasl.*` and `ssl.ca.location` for secured clusters; passed
    /// through to librdkafka unchanged when set.
    pub security_protocol: Option<String>,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    pub ssl_ca_location: Option<String>,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>, channels: Channels) -> Self {
        Self {
            brokers: brokers.into(),
            channels,
            partitions: DEFAULT_PARTITIONS,
            replication_factor: DEFAULT_REPLICATION,
            retention: DEFAULT_RETENTION,
            min_insync_replicas: None,
            message_timeout: Duration::from_millis(DEFAULT_MESSAGE_TIMEOUT_MS),
            fetch_wait: Duration::from_millis(DEFAULT_FETCH_WAIT_MS),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
        }
    }

    pub fn orders_topic(&self) -> String {
        self.channels.orders()
    }

    pub fn dead_letter_topic(&self) -> String {
        self.channels.dead_letters()
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

    /// The dead-letter producer's settings: every replica acknowledges, and a message the
    /// broker does not take within the message timeout fails, so that parking is retried
    /// (librdkafka's default would hold it for five minutes). Not idempotent: a producer
    /// id a restarted broker forgot would fence it for good, and a dead letter parked
    /// twice is re-driven once.
    pub fn dead_letter_producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", self.message_timeout.as_millis().to_string());
        config
    }

    /// The relay's producer settings, also for baselines that compare with it: every
    /// replica acknowledges, lz4, one request in flight per connection (so a retried
    /// request is never overtaken: order per partition holds), no linger (the relay hands
    /// over a whole batch at once), no topics created by asking for them.
    ///
    /// Not idempotent: the relay publishes at least once anyway, and consumers drop
    /// duplicates. On Tansu an idempotent producer cost 8 ms per batch of 50 messages on
    /// an idle machine against 1.6 ms (docs/performance.md), and a producer id a restarted
    /// broker forgot fenced the producer.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "false")
            // The ledger creates its topics with its own settings; a broker that creates
            // missing topics on first use must not do it with its defaults instead.
            .set("allow.auto.create.topics", "false")
            .set("max.in.flight.requests.per.connection", "1")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "0")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", self.message_timeout.as_millis().to_string());
        config
    }

    /// `min.insync.replicas` the topics are created with, if the ledger sets it.
    pub fn min_insync(&self) -> Option<i32> {
        self.min_insync_replicas
            .or((self.replication_factor > 1).then(|| self.replication_factor - 1))
    }

    /// The topic configuration the ledger creates its topics with.
    pub fn topic_config(&self) -> Vec<(&'static str, String)> {
        let mut config = vec![("retention.ms", self.retention.as_millis().to_string())];
        if let Some(replicas) = self.min_insync() {
            config.push(("min.insync.replicas", replicas.to_string()));
        }
        config
    }

    /// Creates the orders and dead-letter topics if missing, with [`Self::topic_config`].
    /// Existing topics are left as they are (partition counts and settings are never
    /// changed behind an operator's back).
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        let failed = |error| BusError::new("creating the topics", error);
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().map_err(failed)?;
        let orders = self.orders_topic();
        let dead_letters = self.dead_letter_topic();
        let replication = || TopicReplication::Fixed(self.replication_factor);
        let config = self.topic_config();
        let topics = [&orders, &dead_letters].map(|name| {
            config
                .iter()
                .fold(NewTopic::new(name, self.partitions, replication()), |topic, (k, v)| {
                    topic.set(k, v)
                })
        });
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&topics, &options).await.map_err(failed)? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    tracing::warn!(%topic, ?code, "could not create topic");
                    return Err(failed(rdkafka::error::KafkaError::AdminOp(code)));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(replication: i32, min_insync: Option<i32>) -> Vec<(&'static str, String)> {
        let mut settings = KafkaSettings::new(DEFAULT_BROKERS, Channels::new("t."));
        settings.replication_factor = replication;
        settings.min_insync_replicas = min_insync;
        settings.topic_config()
    }

    #[test]
    fn topics_keep_a_week_and_survive_one_broker_when_replicated() {
        let week = ("retention.ms", "604800000".to_owned());
        assert_eq!(config(1, None), std::slice::from_ref(&week));
        assert_eq!(config(3, None), [week.clone(), ("min.insync.replicas", "2".to_owned())]);
        assert_eq!(config(2, None), [week.clone(), ("min.insync.replicas", "1".to_owned())]);
        assert_eq!(config(3, Some(3)), [week, ("min.insync.replicas", "3".to_owned())]);
    }
}
