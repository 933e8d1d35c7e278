//! [`StandIn`]: a running stand-in, and the handle its tests steer it with. Started by the
//! same function in tests (port 0) and in the binary, so both exercise the same server.
//!
//! Stopping is graceful: the listener closes and idle connections are shut; a request in
//! the middle of a stall is given [`STOP_GRACE`] to finish before it is cut off.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::records::{Charge, Intent, Refund};
use crate::routes;
use crate::script::Scripted;
use crate::state::Shared;

/// How long [`StandIn::stop`] waits for requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Options {
    /// `127.0.0.1:0` by default: a free port on loopback.
    pub listen: SocketAddr,
    /// The one key `Authorization: Bearer …` must carry.
    pub api_key: String,
    /// How long each `/v1` request is worked on before it answers.
    pub latency: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            api_key: "sk_test_standin".to_owned(),
            latency: Duration::ZERO,
        }
    }
}

/// A running stand-in. Dropping it, or [`StandIn::stop`], shuts it down.
#[derive(Debug)]
pub struct StandIn {
    shared: Shared,
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl StandIn {
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let address = listener.local_addr().context("cannot read the bound address")?;
        let shared = Shared::new(options.api_key, options.latency);
        let app = routes::router(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // A dropped sender is a stop signal too.
            let signal = async {
                let _ = stopped.await;
            };
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
                tracing::warn!(%error, "the payment stand-in stopped serving");
            }
        });
        Ok(Self { shared, address, shutdown: Some(shutdown), server: Some(server) })
    }

    /// `http://127.0.0.1:PORT`: the base URL to give the adapter.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn api_key(&self) -> &str {
        self.shared.api_key()
    }

    /// The next charges of `payment_method` follow `outcomes` in order (after any already
    /// queued), then its own behaviour.
    pub fn script(&self, payment_method: &str, outcomes: Vec<Scripted>) {
        self.shared.script(payment_method, outcomes);
    }

    /// While down, every `/v1` endpoint answers `503 api_error` and does nothing.
    pub fn set_outage(&self, down: bool) {
        self.shared.set_outage(down);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    /// Every successful charge ever made, in order.
    pub fn charges(&self) -> Vec<Charge> {
        self.shared.charges()
    }

    /// Every intent created, with its status now.
    pub fn intents(&self) -> Vec<Intent> {
        self.shared.intents()
    }

    /// Every refund made, in order.
    pub fn refunds(&self) -> Vec<Refund> {
        self.shared.refunds()
    }

    /// `/v1` requests received, refused ones included.
    pub fn requests(&self) -> u64 {
        self.shared.requests()
    }

    /// Stops accepting, and waits for the requests in flight (up to [`STOP_GRACE`]).
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
                server.abort();
            }
        }
    }

    fn signal_stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
