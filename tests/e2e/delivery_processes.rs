//! Notification delivery across processes, against the real `ledger` binary and a real
//! SMTP server: dispatchers share the work without sending anything twice, and one killed
//! with SIGKILL mid-batch leaves nothing undelivered once it is back, with at most the
//! messages it had in flight sent twice — each duplicate with the same Message-ID.

use std::collections::HashMap;
use std::time::Duration;

use ledger_tests::{poll_until, LedgerConfig, LedgerProcess, TestDatabase, TestSmtp};

const DEADLINE: Duration = Duration::from_secs(60);
const CONCURRENCY: &str = "8";

/// A dispatcher-only process mailing through `smtp`, with a short lease so a dead one's
/// claims are taken over quickly.
fn dispatcher(config: &LedgerConfig, smtp: &TestSmtp) -> LedgerConfig {
    config
        .clone()
        .roles("dispatcher")
        .arg("--smtp-url", &smtp.url())
        .arg("--mail-from", "orders@shop.example")
        .arg("--delivery-lease-ms", "1000")
        .arg("--delivery-concurrency", CONCURRENCY)
}

async fn place_orders(writer: &LedgerProcess, count: usize, customer: &str) -> anyhow::Result<()> {
    for n in 0..count {
        let body =
            ledger_tests::TestApp::order_body(uuid::Uuid::now_v7(), &format!("{customer}_{n}"));
        let response = writer.http.post(writer.url("/v1/orders")).json(&body).send().await?;
        anyhow::ensure!(response.status() == 201, "placing an order: {}", response.status());
    }
    Ok(())
}

/// How many emails each Message-ID arrived in.
fn copies(smtp: &TestSmtp) -> anyhow::Result<HashMap<String, usize>> {
    let mut copies = HashMap::new();
    for mail in smtp.messages()? {
        *copies.entry(mail.message_id().unwrap_or_default()).or_insert(0) += 1;
    }
    Ok(copies)
}

async fn until_mailed(smtp: &TestSmtp, distinct: usize) -> anyhow::Result<HashMap<String, usize>> {
    poll_until(DEADLINE, &format!("{distinct} distinct emails"), || async {
        let copies = copies(smtp)?;
        Ok((copies.len() >= distinct).then_some(copies))
    })
    .await
}

#[tokio::test]
async fn two_dispatchers_share_the_work_without_sending_anything_twice() -> anyhow::Result<()> {
    let smtp = TestSmtp::start().await?;
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay,projector");
    let mut writer = LedgerProcess::start(config.clone()).await?;
    let mut first = LedgerProcess::start(dispatcher(&config, &smtp)).await?;
    let mut second = LedgerProcess::start(dispatcher(&config, &smtp)).await?;
    let outcome = async {
        place_orders(&writer, 300, "cus_shared").await?;
        let copies = until_mailed(&smtp, 300).await?;
        let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
        assert_eq!(twice, Vec::<(&String, &usize)>::new(), "sent twice");
        let delivered = |status: serde_json::Value| status["process"]["delivered"].as_u64();
        // A dispatcher counts an email once the server accepted it and the delivery is
        // recorded, a moment after the server has it: wait for the counts to settle.
        let (a, b) = poll_until(DEADLINE, "both dispatchers to count what they sent", || async {
            let (a, b) = (
                delivered(first.get_json("/v1/admin/delivery").await?).unwrap_or(0),
                delivered(second.get_json("/v1/admin/delivery").await?).unwrap_or(0),
            );
            Ok((a + b >= 300).then_some((a, b)))
        })
        .await?;
        eprintln!("two dispatchers: {a} + {b} emails");
        assert_eq!(a + b, 300, "each email counted by the dispatcher that sent it");
        Ok(())
    }
    .await;
    let outcome = first.explain(outcome);
    let outcome = second.explain(outcome);
    writer.explain(outcome)
}

#[tokio::test]
async fn a_dispatcher_killed_mid_batch_leaves_nothing_undelivered() -> anyhow::Result<()> {
    let smtp = TestSmtp::start().await?;
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay,projector");
    let mut writer = LedgerProcess::start(config.clone()).await?;
    let mut dispatching = LedgerProcess::start(dispatcher(&config, &smtp)).await?;
    let store = database.client().await?;
    let outcome = async {
        place_orders(&writer, 200, "cus_killed").await?;
        until_mailed(&smtp, 20).await?;
        // Sends hang on a frozen server: the dispatcher dies with messages in flight.
        smtp.freeze().await?;
        let in_flight = poll_until(DEADLINE, "messages in flight", || async {
            let sending: i64 = store
                .query_one("SELECT count(*) FROM deliveries WHERE status = 'sending'", &[])
                .await?
                .get(0);
            Ok((sending > 0).then_some(sending))
        })
        .await?;
        dispatching.kill_9().await?;
        smtp.thaw().await?;
        let before_restart = copies(&smtp)?.len();
        dispatching.restart().await?;

        let copies = until_mailed(&smtp, 200).await?;
        let duplicates: usize = copies.values().map(|n| n - 1).sum();
        eprintln!(
            "dispatcher killed with {in_flight} in flight after {before_restart} of 200 \
             emails: {duplicates} sent twice"
        );
        assert_eq!(copies.len(), 200, "every notification delivered");
        assert!(copies.keys().all(|id| id.ends_with("@shop.example>")), "{copies:?}");
        let in_flight = usize::try_from(in_flight)?;
        assert!(duplicates <= in_flight, "{duplicates} duplicates, more than were in flight");
        Ok(())
    }
    .await;
    let outcome = dispatching.explain(outcome);
    writer.explain(outcome)
}
