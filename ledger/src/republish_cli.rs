//! `ledger relay republish`: re-sends a range of history to a channel of its own, for a
//! new consumer to back-fill from, with a progress bar and a rate. The live relay and its
//! checkpoint are not touched (`bus::republish`).

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use bus::republish::{republish, Range};

use crate::bus_args::BusArgs;
use crate::config::DatabaseArgs;

#[derive(clap::Args)]
pub struct RepublishArgs {
    /// The first global position to re-send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
    from_position: i64,
    /// The last global position to re-send [default: the last one committed when it
    /// starts].
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    to_position: Option<i64>,
    /// The channel to send to: a Kafka topic; a NATS subject (messages go to
    /// `<subject>.<partition>` in a stream of their own); a RabbitMQ exchange (bind the new
    /// consumer's queues to it first: RabbitMQ keeps only what a queue is bound for).
    #[arg(long)]
    to: String,
    /// Events read and published per batch.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(i64).range(1..))]
    batch_size: i64,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    bus: BusArgs,
}

pub async fn run(args: RepublishArgs) -> anyhow::Result<()> {
    if let Some(to) = args.to_position {
        anyhow::ensure!(
            to >= args.from_position,
            "--to-position ({to}) is before --from-position ({})",
            args.from_position
        );
    }
    anyhow::ensure!(!args.to.trim().is_empty(), "--to names no channel");
    let bus = args.bus.settings()?.backfilling(&args.to);
    let (client, connection) = args
        .database
        .connector()?
        .connect()
        .await
        .context("connecting to DATABASE_URL / --database-url")?;
    tokio::spawn(connection);
    let mut publisher = bus.publisher("republish").await.context("connecting to the bus")?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}  {msg}")?
            .progress_chars("=> "),
    );
    bar.set_message(format!("→ {} on {}", args.to, bus.kind.name()));
    let range = Range { from: args.from_position, to: args.to_position };
    let started = std::time::Instant::now();
    let outcome = republish(&client, &mut publisher, range, args.batch_size, |progress| {
        bar.set_length(progress.total);
        bar.set_position(progress.published);
    })
    .await;
    match outcome {
        Ok(progress) => {
            let seconds = started.elapsed().as_secs_f64();
            let summary = format!(
                "{} events re-sent to {} up to position {} in {seconds:.1} s ({:.0} events/s)",
                progress.published,
                args.to,
                progress.position.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                progress.published as f64 / seconds.max(f64::EPSILON),
            );
            bar.finish_and_clear();
            // The bar draws only on a terminal; the summary is for scripts too.
            println!("{summary}");
            Ok(())
        }
        Err(error) => {
            let error = anyhow::Error::new(error);
            bar.abandon_with_message(format!("{error:#}"));
            Err(error.context(format!("republishing to {}", args.to)))
        }
    }
}
