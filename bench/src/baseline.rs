//! Raw PostgreSQL baselines measured in the same run, against the same server, so the
//! ledger's figures can be read as ratios that mean something on any machine:
//!
//! - **pgbench single-row inserts** at the bench's client count (`pgbench -n -c N -j 2
//!   -T S`) into a scratch table created for the purpose and dropped afterwards: the most a
//!   client could get from this PostgreSQL with one durable commit per request. A ledger
//!   command does more (a stream lock, a load, an idempotency record, the events), so the
//!   ratio commands/s ÷ pgbench TPS says how much of the database's commit capacity the
//!   ledger turns into commands.
//! - **Raw ordered read of the events** (`COPY (SELECT … FROM events ORDER BY tx_id,
//!   global_position) TO STDOUT`): the floor under any replay in the gap-safe order, hence
//!   the baseline for the rebuild rate (rebuild ÷ raw read).
//! - **Raw produce**: the store's first events (up to [`RAW_PRODUCE_EVENTS`]), encoded as
//!   the relay encodes them before the clock starts, produced with the relay's producer
//!   settings to a scratch topic: what the broker takes with no store reads and no
//!   checkpoints, the baseline for the relay's rate.

use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;

/// What one pgbench insert writes: about the size of an `OrderPlaced` payload.
const PAYLOAD: &str = r#"{"order_id": "0190f3c2-5b9e-7c41-9a3e-2d1f00000000", "customer_id": "cus_bench_42", "customer_email": "bench+42@example.com", "lines": [{"sku": "BOOK-1", "quantity": 2, "unit_price": {"amount_minor": 1250, "currency": "EUR"}}], "total": {"amount_minor": 2500, "currency": "EUR"}, "sales_channel": "bench"}"#;

#[derive(Clone, Debug, Serialize)]
pub struct Pgbench {
    pub clients: u32,
    pub seconds: u64,
    pub tps: f64,
    /// pgbench's own average latency, when it printed one.
    pub latency_average_ms: Option<f64>,
    pub table: String,
}

/// Most events the raw-produce baseline sends.
pub const RAW_PRODUCE_EVENTS: i64 = 100_000;

#[derive(Clone, Debug, Serialize)]
pub struct RawProduce {
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub topic: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RawRead {
    pub events: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

async fn connect(database_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let connector = eventstore::Connector::new(database_url).context("--database-url")?;
    let (client, connection) =
        connector.connect().await.with_context(|| "connecting to --database-url")?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "bench baseline connection");
        }
    });
    Ok(client)
}

/// Runs pgbench; `Err` says why it could not (reported as "skipped: …").
pub async fn pgbench(database_url: &str, clients: u32, seconds: u64) -> anyhow::Result<Pgbench> {
    match tokio::process::Command::new("pgbench").arg("--version").output().await {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("pgbench is not on PATH (Debian: apt-get install postgresql-client)")
        }
        other => {
            other.context("running pgbench --version")?;
        }
    }
    let client = connect(database_url).await?;
    let table = format!("bench_baseline_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             payload jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .with_context(|| format!("creating the scratch table {table}"))?;
    let script = std::env::temp_dir().join(format!("{table}.sql"));
    let outcome = async {
        std::fs::write(
            &script,
            format!("INSERT INTO {table} (payload) VALUES ('{PAYLOAD}'::jsonb);\n"),
        )?;
        let output = tokio::process::Command::new("pgbench")
            .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string()])
            .arg("-f")
            .arg(&script)
            .arg(database_url)
            .output()
            .await
            .context("running pgbench")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let tps = parse_tps(&stdout).ok_or_else(|| {
            anyhow::anyhow!(
                "pgbench printed no tps (exit {}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
        Ok::<_, anyhow::Error>(Pgbench {
            clients,
            seconds,
            tps,
            latency_average_ms: parse_latency(&stdout),
            table: table.clone(),
        })
    }
    .await;
    let _ = std::fs::remove_file(&script);
    let dropped = client.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).await;
    let measured = outcome?;
    dropped.with_context(|| format!("dropping the scratch table {table}"))?;
    Ok(measured)
}

/// `tps = 1234.567890 (without initial connection time)` (pgbench 14+), or the two lines
/// `including`/`excluding connections establishing` of older versions (the latter wins).
pub fn parse_tps(stdout: &str) -> Option<f64> {
    let mut found = None;
    for line in stdout.lines().map(str::trim).filter(|line| line.starts_with("tps = ")) {
        let value = line.trim_start_matches("tps = ").split_whitespace().next()?.parse().ok();
        if found.is_none() || line.contains("excluding") || line.contains("without") {
            found = value.or(found);
        }
    }
    found
}

fn parse_latency(stdout: &str) -> Option<f64> {
    let line = stdout.lines().find(|line| line.trim_start().starts_with("latency average"))?;
    line.split('=').nth(1)?.split_whitespace().next()?.parse().ok()
}

/// Reads every event in the gap-safe commit order and throws it away, counting.
pub async fn raw_read(database_url: &str) -> anyhow::Result<RawRead> {
    let client = connect(database_url).await?;
    let started = Instant::now();
    let stream = client
        .copy_out(
            "COPY (SELECT global_position, stream_id, stream_version, event_id, event_type, \
             event_version, payload, metadata, recorded_at FROM events \
             ORDER BY tx_id, global_position) TO STDOUT",
        )
        .await
        .context("COPY of the events table (is --database-url the ledger's database?)")?;
    let mut stream = std::pin::pin!(stream);
    let (mut events, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        events += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(RawRead {
        events,
        bytes,
        seconds,
        events_per_second: if seconds > 0.0 { events as f64 / seconds } else { 0.0 },
    })
}

/// Produces the store's first events as the relay would, to a scratch topic of its own.
pub async fn raw_produce(
    database_url: &str,
    kafka: &bus_kafka::KafkaSettings,
) -> anyhow::Result<RawProduce> {
    use eventstore::position::{read_committed_after, CommitPosition};
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

    let client = connect(database_url).await?;
    let mut events = Vec::new();
    let mut after = CommitPosition::default();
    while (events.len() as i64) < RAW_PRODUCE_EVENTS {
        let batch =
            read_committed_after(&client, after, RAW_PRODUCE_EVENTS - events.len() as i64).await?;
        let Some(last) = batch.last() else { break };
        after = last.commit;
        events.extend(batch);
    }
    anyhow::ensure!(!events.is_empty(), "the store has no events to produce");
    let messages = events
        .iter()
        .map(|event| bus::envelope::encode(&event.borrow()))
        .collect::<Result<Vec<_>, serde_json::Error>>()?;

    let mut scratch = kafka.clone();
    scratch.channels = bus::Channels::new(format!(
        "{}ledger-bench-raw-{}.",
        kafka.channels.prefix(),
        uuid::Uuid::new_v4().simple()
    ));
    scratch.ensure_topics().await.context("creating the scratch topic")?;
    let topic = scratch.orders_topic();
    let producer: FutureProducer =
        scratch.producer_config().set("message.timeout.ms", "30000").create()?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(messages.len());
    for message in &messages {
        let record = FutureRecord::to(&topic).key(&message.key).payload(&message.payload);
        deliveries.push(producer.send_result(record).map_err(|(error, _)| error)?);
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(error, _)| error)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::task::spawn_blocking(move || producer.flush(std::time::Duration::from_secs(5)))
        .await??;
    Ok(RawProduce {
        events: messages.len() as u64,
        seconds,
        events_per_second: messages.len() as f64 / seconds.max(1e-9),
        topic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tps_and_latency_from_pgbench_output() {
        let modern = "number of failed transactions: 0 (0.000%)\nlatency average = 3.861 ms\n\
                      initial connection time = 20.337 ms\ntps = 8287.012345 (without initial connection time)\n";
        assert_eq!(parse_tps(modern), Some(8287.012345));
        assert_eq!(parse_latency(modern), Some(3.861));
        let old = "tps = 900.1 (including connections establishing)\n\
                   tps = 910.2 (excluding connections establishing)\n";
        assert_eq!(parse_tps(old), Some(910.2));
        assert_eq!(parse_tps("pgbench: error: connection refused"), None);
    }
}
