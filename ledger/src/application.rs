//! Building and running the application. `main` and the tests go through the same
//! [`Application::build`], so tests exercise the real wiring.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use api::{Admission, ApiContext, BusInfo, Gate, Roles};
use commands::CommandService;
use eventstore::EventStore;
use projections::AppliedSignal;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::roles;
use crate::settings::{Role, Settings};
use crate::supervisor::Supervisor;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    shutdown_grace: Duration,
    supervisor: Supervisor,
    stop_tasks: CancellationToken,
}

impl Application {
    /// Connects to the database, applies migrations (unless told not to), binds the
    /// listener and starts the background roles. Requests are served from [`run`](Self::run).
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        // Each bus has a relay (checkpoint and leadership) of its own.
        settings.relay.name = settings.bus.relay_name().to_owned();
        if settings.access.tokens.is_none() {
            tracing::warn!(
                "serving WITHOUT authentication (--insecure-no-auth): every caller is an admin"
            );
        }
        let admission = Admission {
            gate: Gate::new(
                settings.access.tokens.clone(),
                settings.access.max_in_flight_per_token,
            ),
            request_timeout: settings.access.request_timeout,
        };
        let pool =
            eventstore::connect(&settings.database).context("DATABASE_URL / --database-url")?;
        if !settings.skip_migrations {
            migrations::migrate(&pool).await.context("applying migrations")?;
        }
        let listener = TcpListener::bind(settings.http_addr).await.with_context(|| {
            format!("LEDGER_HTTP_ADDR / --http-addr: binding {}", settings.http_addr)
        })?;

        let stop_tasks = CancellationToken::new();
        let mut supervisor = Supervisor::new(stop_tasks.clone());
        let mut roles = Roles::default();
        let applied = AppliedSignal::default();
        if settings.runs(Role::Relay) {
            roles.relay = Some(roles::start_relay(&settings, &mut supervisor));
        }
        if settings.runs(Role::Projector) {
            roles.consumers = roles::start_projectors(&settings, &pool, &applied, &mut supervisor);
        }
        if settings.runs(Role::Api) {
            roles::listen_for_applied(&settings, &applied, &mut supervisor);
        }
        if settings.runs(Role::Dispatcher) {
            roles.dispatcher = Some(roles::start_dispatcher(&settings, &pool, &mut supervisor)?);
        }
        let store = EventStore::new(pool.clone())
            .with_idempotency_retention(settings.idempotency.retention);
        if settings.runs(Role::Api) {
            roles::prune_idempotency_keys(&store, settings.idempotency.expiry, &mut supervisor);
        }
        let commands = CommandService::new(store, settings.group_commit);
        if settings.runs(Role::Payments) {
            let payments = settings.payments.as_ref().context(
                "the payments role needs LEDGER_PAYMENT_PROVIDER_URL and LEDGER_PAYMENT_PROVIDER_KEY",
            )?;
            roles.payments = Some(roles::start_payments(
                &settings,
                payments,
                &pool,
                &commands,
                &mut supervisor,
            )?);
        }
        roles.tasks = Some(supervisor.health());

        let bus = BusInfo {
            relay_name: settings.relay.name.clone(),
            asyncapi: std::sync::Arc::new(crate::bus_choice::asyncapi(&settings.bus)),
        };
        let context =
            ApiContext::new(commands, roles, applied, api::metrics::install()).with_bus(bus);
        Ok(Self {
            listener,
            router: api::router(context, admission, settings.runs(Role::Api)),
            shutdown_grace: settings.shutdown_grace,
            supervisor,
            stop_tasks,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then lets in-flight requests finish and the
    /// background tasks finish their batch, each for up to the grace period.
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
        self.stop_tasks.cancel();
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
        if tokio::time::timeout(grace, self.supervisor.stopped()).await.is_err() {
            tracing::warn!(?grace, "background tasks did not stop within the grace period");
        }
        served
    }
}
