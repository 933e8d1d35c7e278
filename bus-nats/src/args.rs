//! The adapter's settings as flags and environment variables, for the `ledger` binary
//! and the bench alike. The channel prefix is the caller's: it is shared by every bus.

use std::time::Duration;

use bus::Channels;
use clap::{value_parser, Args};

use crate::settings::{NatsSettings, DEFAULT_PARTITIONS, DEFAULT_REPLICAS, DEFAULT_URL};

#[derive(Args, Clone, Debug)]
pub struct NatsArgs {
    /// NATS server URL (several, comma separated, for a cluster).
    #[arg(long, env = "LEDGER_NATS_URL", default_value = DEFAULT_URL)]
    pub nats_url: String,
    /// Subjects the orders stream is split into when the ledger creates it; must not
    /// change once it exists.
    #[arg(long, env = "LEDGER_NATS_PARTITIONS", default_value_t = DEFAULT_PARTITIONS,
          value_parser = value_parser!(u32).range(1..))]
    pub nats_partitions: u32,
    /// Replicas of the streams the ledger creates (3 on a production cluster).
    #[arg(long, env = "LEDGER_NATS_REPLICAS", default_value_t = DEFAULT_REPLICAS,
          value_parser = value_parser!(usize))]
    pub nats_replicas: usize,
    /// Retention of the orders stream when the ledger creates it (`7d`, `36h`, or
    /// seconds).
    #[arg(long, env = "LEDGER_NATS_MAX_AGE", default_value = "7d", value_parser = bus::parse_duration)]
    pub nats_max_age: Duration,
    /// How long the server drops a republished message id (`2m`, or seconds).
    #[arg(long, env = "LEDGER_NATS_DUPLICATE_WINDOW", default_value = "2m",
          value_parser = bus::parse_duration)]
    pub nats_duplicate_window: Duration,
}

impl NatsArgs {
    pub fn settings(&self, channels: Channels) -> NatsSettings {
        let mut settings = NatsSettings::new(self.nats_url.clone(), channels);
        settings.partitions = self.nats_partitions;
        settings.replicas = self.nats_replicas.max(1);
        settings.max_age = self.nats_max_age;
        settings.duplicate_window = self.nats_duplicate_window;
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsArgs,
    }

    #[test]
    fn flags_override_the_defaults() {
        let cli = Cli::parse_from(["ledger", "--nats-partitions", "4", "--nats-max-age", "1h"]);
        let settings = cli.nats.settings(Channels::new("t."));
        assert_eq!(settings.partitions, 4);
        assert_eq!(settings.max_age, Duration::from_secs(3_600));
        assert_eq!(settings.channels.prefix(), "t.");
    }
}
