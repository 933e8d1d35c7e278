//! `payment-standin`: the stand-in as a process, for local demos — point the ledger at the
//! URL it prints and steer it with `curl` under `/_standin/…` (see
//! `docs/payment-provider.md`). Tests start it in-process instead, through the library.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use payment_standin::{Options, StandIn};

/// A local stand-in for the payment provider (the subset of Stripe's API the ledger uses).
#[derive(Debug, Parser)]
#[command(version)]
struct Arguments {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:12111")]
    listen: SocketAddr,
    /// The API key clients must send as `Authorization: Bearer …`.
    #[arg(long, default_value = "sk_test_standin")]
    api_key: String,
    /// How long each /v1 request takes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An empty RUST_LOG counts as unset: it would otherwise silence everything.
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned());
    // Logs on stderr, so stdout carries only the URL.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_writer(std::io::stderr)
        .init();
    let arguments = Arguments::parse();
    let options = Options {
        listen: arguments.listen,
        api_key: arguments.api_key,
        latency: Duration::from_millis(arguments.latency_ms),
    };
    let standin = StandIn::start(options).await?;
    // The URL alone on stdout, so a script can capture it.
    println!("{}", standin.url());
    shutdown_signal().await?;
    standin.stop().await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
