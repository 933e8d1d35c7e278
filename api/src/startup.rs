//! Building and running the application. `main` and the tests go through the same
//! [`Application::build`], so tests exercise the real wiring.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use eventstore::{EventStore, Relay};

use crate::auth::Gate;
use crate::config::{Role, ServeArgs};
use crate::routes::{router, Admission, ApiContext};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    shutdown_grace: Duration,
    relay: Option<JoinHandle<()>>,
    projectors: Vec<JoinHandle<()>>,
    stop_workers: watch::Sender<bool>,
}

impl Application {
    /// Connects to the database, applies migrations (unless told not to), binds the
    /// listener and starts the background roles. Requests are served from [`run`](Self::run).
    pub async fn build(settings: &ServeArgs) -> anyhow::Result<Self> {
        let tokens = settings.access.tokens()?;
        if tokens.is_none() {
            tracing::warn!(
                "serving WITHOUT authentication (--insecure-no-auth): every caller is an admin"
            );
        }
        let admission = Admission {
            gate: Gate::new(tokens, settings.access.max_in_flight_per_token),
            request_timeout: Duration::from_millis(settings.access.request_timeout_ms.max(1)),
        };
        let pool = eventstore::connect(&settings.database.pool_settings())?;
        if !settings.skip_migrations {
            eventstore::migrate(&pool).await.context("applying migrations")?;
        }
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("binding {}", settings.http_addr))?;

        let (stop_workers, workers_stopping) = watch::channel(false);
        let mut relay_status = None;
        let relay = settings.roles.contains(&Role::Relay).then(|| {
            let relay = Relay::new(
                settings.database.database_url.clone(),
                settings.kafka.settings(),
                settings.relay.settings(),
            );
            relay_status = Some(relay.status());
            relay.spawn(workers_stopping.clone())
        });

        let mut projector_status = Vec::new();
        let mut projectors = Vec::new();
        if settings.roles.contains(&Role::Projector) {
            let kafka = settings.kafka.settings();
            let worker_settings = projections::WorkerSettings::default();
            let payments = projections::Worker::new(
                projections::payments::Payments,
                pool.clone(),
                kafka.clone(),
                worker_settings.clone(),
            );
            projector_status.push(payments.status());
            projectors.push(payments.spawn(workers_stopping.clone()));
            let notifications = projections::Worker::new(
                projections::notifications::Notifications,
                pool.clone(),
                kafka,
                worker_settings,
            );
            projector_status.push(notifications.status());
            projectors.push(notifications.spawn(workers_stopping.clone()));
        }

        let context = ApiContext {
            store: EventStore::new(pool.clone()),
            relay: relay_status,
            projectors: projector_status,
            metrics: crate::metrics::recorder(),
            rebuilds: Default::default(),
            group_commit: settings.group_commit.settings().map(|group| {
                crate::group_commit::GroupCommit::start(EventStore::new(pool.clone()), group)
            }),
        };
        Ok(Self {
            listener,
            router: router(context, admission, settings.roles.contains(&Role::Api)),
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
            relay,
            projectors,
            stop_workers,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then lets in-flight requests finish and the
    /// background workers finish their batch, each for up to the grace period.
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
        let finished = tokio::select! {
            result = &mut server => Some(result.context("serving HTTP")),
            _ = stopping_rx => None,
        };
        let _ = self.stop_workers.send(true);
        let served = match finished {
            Some(result) => result,
            None => match tokio::time::timeout(grace, server).await {
                Ok(result) => result.context("serving HTTP"),
                Err(_) => {
                    tracing::warn!(
                        ?grace,
                        "in-flight requests did not finish within the grace period"
                    );
                    Ok(())
                }
            },
        };
        let workers = self.relay.into_iter().chain(self.projectors);
        if tokio::time::timeout(grace, futures_util::future::join_all(workers)).await.is_err() {
            tracing::warn!(?grace, "background workers did not stop within the grace period");
        }
        served
    }
}
