//! The background roles of a process: the relay and the projection consumers, each
//! supervised, each reporting through a `watch` the API reads.

use bus::relay::RelayStatus;
use bus::{Consumer, ConsumerStatus};
use delivery::{Dispatcher, DispatcherStatus};
use projections::{AppliedSignal, CatchUp, ProjectionHandler, ProjectionKind, ProjectionStats};
use tokio::sync::watch;

use crate::delivery_args::channels;
use crate::payment_args::PaymentSettings;
use crate::settings::Settings;
use crate::supervisor::Supervisor;

/// Starts the relay; returns its status.
pub fn start_relay(
    settings: &Settings,
    supervisor: &mut Supervisor,
) -> watch::Receiver<RelayStatus> {
    let status = watch::Sender::new(RelayStatus::default());
    let view = status.subscribe();
    let (database_url, bus, relay) =
        (settings.database.database_url.clone(), settings.bus.clone(), settings.relay.clone());
    supervisor.supervise("relay", move |shutdown| {
        let (database_url, bus, relay, status) =
            (database_url.clone(), bus.clone(), relay.clone(), status.clone());
        async move { bus.run_relay(database_url, relay, status, shutdown).await }
    });
    view
}

/// Starts one consumer and one catch-up from the store per projection; returns their
/// status and statistics.
pub fn start_projectors(
    settings: &Settings,
    pool: &eventstore::Pool,
    signal: &AppliedSignal,
    supervisor: &mut Supervisor,
) -> Vec<api::ConsumerView> {
    ProjectionKind::ALL
        .into_iter()
        .map(|kind| {
            let status = watch::Sender::new(ConsumerStatus {
                name: kind.name().to_owned(),
                ..ConsumerStatus::default()
            });
            let stats = watch::Sender::new(ProjectionStats::new(kind));
            let view = api::ConsumerView { status: status.subscribe(), stats: stats.subscribe() };
            let (pool, catch_up, signal) =
                (pool.clone(), settings.catch_up.clone(), signal.clone());
            supervisor.supervise(&format!("catch-up:{kind}"), {
                let (pool, stats, signal) = (pool.clone(), stats.clone(), signal.clone());
                let consumer = status.subscribe();
                move |shutdown| {
                    let catch_up = CatchUp::new(
                        kind,
                        pool.clone(),
                        catch_up.clone(),
                        stats.clone(),
                        signal.clone(),
                        consumer.clone(),
                    );
                    catch_up.run(shutdown)
                }
            });
            let (bus, consumer) = (settings.bus.clone(), settings.consumer.clone());
            supervisor.supervise(&format!("projector:{kind}"), move |shutdown| {
                let handler =
                    ProjectionHandler::new(kind, pool.clone(), stats.clone(), signal.clone());
                let consumer = Consumer::new(handler, consumer.clone(), status.clone());
                let bus = bus.clone();
                async move {
                    let group = bus.channels().group(kind.name());
                    bus.consume(consumer, group, shutdown).await;
                }
            });
            view
        })
        .collect()
}

/// Wakes this process's readers when another process applies a batch.
pub fn listen_for_applied(
    settings: &Settings,
    signal: &AppliedSignal,
    supervisor: &mut Supervisor,
) {
    let (database_url, signal) = (settings.database.database_url.clone(), signal.clone());
    supervisor.supervise("applied-listener", move |shutdown| {
        signal.clone().listen(database_url.clone(), shutdown)
    });
}

/// Deletes expired idempotency records now and then.
pub fn prune_idempotency_keys(
    store: &eventstore::EventStore,
    expiry: commands::KeyExpirySettings,
    supervisor: &mut Supervisor,
) {
    let store = store.clone();
    supervisor.supervise("idempotency-expiry", move |shutdown| {
        commands::prune_expired_keys(store.clone(), expiry, shutdown)
    });
}

/// Starts the dispatcher over the configured channels; returns its status.
pub fn start_dispatcher(
    settings: &Settings,
    pool: &eventstore::Pool,
    supervisor: &mut Supervisor,
) -> anyhow::Result<watch::Receiver<DispatcherStatus>> {
    let channels = channels(&settings.channels, &settings.delivery)?;
    anyhow::ensure!(
        !channels.is_empty(),
        "the dispatcher role needs a channel: set LEDGER_SMTP_URL and LEDGER_MAIL_FROM, or \
         LEDGER_WEBHOOK_URL and LEDGER_WEBHOOK_SECRET"
    );
    let status = watch::Sender::new(DispatcherStatus::default());
    let view = status.subscribe();
    let (pool, delivery) = (pool.clone(), settings.delivery.clone());
    supervisor.supervise("dispatcher", move |shutdown| {
        Dispatcher::new(pool.clone(), channels.clone(), delivery.clone(), status.clone())
            .run(shutdown)
    });
    Ok(view)
}

/// Starts the payment service: its consumer of the order events (own consumer group) and
/// its worker; returns the worker's status.
pub fn start_payments(
    settings: &Settings,
    payments: &PaymentSettings,
    pool: &eventstore::Pool,
    commands: &commands::CommandService,
    supervisor: &mut Supervisor,
) -> anyhow::Result<watch::Receiver<payment_service::ServiceStatus>> {
    let provider =
        payment_provider::stripe::Stripe::new(payments.provider.clone()).map_err(|error| {
            anyhow::anyhow!("LEDGER_PAYMENT_PROVIDER_URL (--payment-provider-url): {error}")
        })?;
    let provider = std::sync::Arc::new(provider);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let status = watch::Sender::new(payment_service::ServiceStatus::default());
    let view = status.subscribe();
    let consumer_status = watch::Sender::new(ConsumerStatus {
        name: payment_service::CONSUMER.to_owned(),
        ..ConsumerStatus::default()
    });
    let undelivered = std::sync::Arc::new(payment_service::UndeliveredAt::default());
    supervisor.supervise("payments:catch-up", {
        let (pool, wake, undelivered) = (pool.clone(), wake.clone(), undelivered.clone());
        let (grace, interval) = (payments.service.catch_up_grace, payments.service.poll);
        move |shutdown| {
            payment_service::CatchUp::new(
                pool.clone(),
                wake.clone(),
                undelivered.clone(),
                grace,
                interval,
            )
            .run(shutdown)
        }
    });
    let (bus, consumer) = (settings.bus.clone(), settings.consumer.clone());
    supervisor.supervise("payments:consumer", {
        let (pool, wake) = (pool.clone(), wake.clone());
        move |shutdown| {
            let handler = payment_service::PaymentHandler::new(
                pool.clone(),
                wake.clone(),
                undelivered.clone(),
            );
            let consumer = Consumer::new(handler, consumer.clone(), consumer_status.clone());
            let bus = bus.clone();
            async move {
                let group = bus.channels().service_group(payment_service::CONSUMER);
                bus.consume(consumer, group, shutdown).await;
            }
        }
    });
    let (pool, commands, service) = (pool.clone(), commands.clone(), payments.service.clone());
    supervisor.supervise("payments:worker", move |shutdown| {
        payment_service::Worker::new(
            pool.clone(),
            commands.clone(),
            provider.clone(),
            service.clone(),
            status.clone(),
            wake.clone(),
        )
        .run(shutdown)
    });
    Ok(view)
}
