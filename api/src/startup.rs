//! Building and running the application. `main` and the tests go through the same
//! [`Application::build`], so tests exercise the real wiring.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use eventstore::EventStore;

use crate::config::ServeArgs;
use crate::routes::{router, ApiContext};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    shutdown_grace: Duration,
}

impl Application {
    /// Connects to the database, applies migrations (unless told not to) and binds the
    /// listener. Nothing is served until [`run`](Self::run).
    pub async fn build(settings: &ServeArgs) -> anyhow::Result<Self> {
        let pool = eventstore::connect(&settings.database.pool_settings())?;
        if !settings.skip_migrations {
            eventstore::migrate(&pool)
                .await
                .context("applying migrations")?;
        }
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("binding {}", settings.http_addr))?;
        let context = ApiContext {
            store: EventStore::new(pool),
        };
        Ok(Self {
            listener,
            router: router(context),
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for up to
    /// the grace period.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        let grace = self.shutdown_grace;
        let mut server = std::pin::pin!(server.into_future());
        tokio::select! {
            result = &mut server => return result.context("serving HTTP"),
            _ = stopping_rx => {}
        }
        match tokio::time::timeout(grace, server).await {
            Ok(result) => result.context("serving HTTP"),
            Err(_) => {
                tracing::warn!(
                    ?grace,
                    "in-flight requests did not finish within the grace period"
                );
                Ok(())
            }
        }
    }
}
