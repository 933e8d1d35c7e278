//! The `ledger` command line: what the binary runs.

use anyhow::Context;
use bus::relay::relay_report;
use clap::{Parser, Subcommand};

use crate::bus_choice::BusKind;
use crate::config::{DatabaseArgs, LogFormat, ServeArgs};
use crate::rebuild_cli::RebuildArgs;
use crate::republish_cli::RepublishArgs;
use crate::{shutdown, telemetry, Application};

#[derive(Parser)]
#[command(name = "ledger", version, about = "Event-sourced order ledger")]
struct Cli {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Export traces to this OTLP/HTTP receiver (`http://collector:4318`; the spans go to
    /// its `/v1/traces`, as JSON). Unset: trace contexts are still propagated, nothing is
    /// exported.
    #[arg(long, env = "LEDGER_OTLP_ENDPOINT", global = true, value_parser = telemetry::parse_endpoint)]
    otlp_endpoint: Option<url::Url>,
    #[command(subcommand)]
    command: Commands,
}

// Parsed once at start-up: the size difference between subcommands does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Commands {
    /// Serve the HTTP API (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// The relay that publishes events to the bus.
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API and exit.
    Openapi,
    /// Print the AsyncAPI 3.0 document of the events on the bus (every bus, with the
    /// channel names under LEDGER_TOPIC_PREFIX) and exit.
    Asyncapi(crate::bus_args::BusArgs),
    /// The read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Load a running ledger through its HTTP API and report throughput, latency and
    /// rates next to PostgreSQL baselines (see docs/performance.md).
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Print each projection's progress, lag and dead letters.
    Status(DatabaseArgs),
    /// Replay the event store into a new generation of a projection and swap it in (or,
    /// with --to-position / --as-of, build it as of that point into `rebuild_<name>`).
    Rebuild(RebuildArgs),
}

// Parsed once at start-up: the size difference between subcommands does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum RelayCommand {
    /// Print the relay's checkpoint, backlog and the age of the oldest open transaction.
    Status {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Whose relay: each bus has its own checkpoint.
        #[arg(long, env = "LEDGER_BUS", value_enum, default_value_t = BusKind::Kafka)]
        bus: BusKind,
    },
    /// Re-send a range of history to a channel of its own (back-fill for a new
    /// consumer), in the gap-safe order, without touching the relay's checkpoint.
    Republish(RepublishArgs),
}

/// Parses the process arguments and runs the chosen command to completion.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init(cli.log_format, cli.otlp_endpoint.as_ref())?;
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli));
    // After `Application::run` and the runtime: the spans of the last requests and
    // batches are exported before the process ends.
    telemetry.shutdown();
    outcome
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Commands::Serve(args) => {
            let application = Application::build(args.settings()?).await?;
            let address = application.local_addr()?;
            tracing::info!(%address, "ledger listening on http://{address}");
            application.run(shutdown::signal()).await
        }
        Commands::Migrate(database) => {
            migrations::migrate(&database.pool()?).await.context("applying migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Commands::Openapi => print_out(&serde_json::to_string_pretty(&api::openapi_json())?),
        Commands::Projections { command: ProjectionsCommand::Rebuild(args) } => {
            crate::rebuild_cli::run(args).await
        }
        Commands::Projections { command: ProjectionsCommand::Status(database) } => {
            let report = projections::status::report(&database.pool()?).await?;
            print_out(&serde_json::to_string_pretty(&report)?)
        }
        Commands::Bench(args) => bench::run(args).await,
        Commands::Relay { command: RelayCommand::Status { database, bus } } => {
            let report = relay_report(&database.pool()?, bus.name()).await?;
            print_out(&serde_json::to_string_pretty(&report)?)
        }
        Commands::Relay { command: RelayCommand::Republish(args) } => {
            crate::republish_cli::run(args).await
        }
        Commands::Asyncapi(bus) => {
            let document = crate::bus_choice::asyncapi(&bus.settings()?);
            print_out(&serde_json::to_string_pretty(&document)?)
        }
    }
}

/// Writes a report to stdout; a closed pipe (`ledger openapi | head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
