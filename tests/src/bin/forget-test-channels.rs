//! Deletes what earlier test runs left on the shared NATS server: the JetStream streams and
//! key-value buckets of every test's channels (named from its `test-<uuid>.` prefix).
//! `scripts/test` runs it before the tests, as it drops leftover test databases: every one
//! that exists then predates the run. (RabbitMQ needs nothing: a test's queues expire once
//! unused.)

use futures_util::TryStreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let url = ledger_tests::buses::nats_url();
    let client = async_nats::connect(&url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let names: Vec<String> = jetstream.stream_names().try_collect().await?;
    let leftovers: Vec<&String> = names
        .iter()
        .filter(|name| name.starts_with("test-") || name.starts_with("KV_test-"))
        .collect();
    for name in &leftovers {
        jetstream.delete_stream(name.as_str()).await?;
    }
    println!("deleted {} leftover test streams of {} on {url}", leftovers.len(), names.len());
    Ok(())
}
