//! Roles in separate processes: a process serving only the API answers read-your-writes
//! from the read models that projection workers in another process write (woken by their
//! notifications).

use ledger::{Application, Role, Settings};
use ledger_tests::{kafka_brokers, TestApp};

#[tokio::test]
async fn a_process_serving_only_queries_answers_from_workers_in_another() -> anyhow::Result<()> {
    let app = TestApp::spawn_with_roles(&[Role::Api, Role::Relay], &kafka_brokers()).await?;
    // The workers' process: the same database and topics, nothing else shared.
    let mut settings = Settings::new(app.database.url.clone(), None);
    settings.http_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.roles = vec![Role::Projector];
    settings.bus = app.bus.clone();
    settings.skip_migrations = true;
    let workers = Application::build(settings).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(workers.run(async move {
        let _ = stopped.await;
    }));

    for n in 0..5 {
        let order_id = app.place_order(&format!("cus_split_{n}")).await?;
        let version = TestApp::version_of(app.capture(order_id, "pay_1", 400).await?).await?;
        let payments = app.payments(order_id, version).await?;
        assert_eq!(payments["captured"], 400, "{payments}");
    }
    let _ = stop.send(());
    running.await??;
    Ok(())
}
