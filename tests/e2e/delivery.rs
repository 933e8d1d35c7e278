//! The ledger sends its notifications: email to a real SMTP server (aiosmtpd) and Standard
//! Webhooks to a real HTTP receiver that verifies their signatures. Each notification
//! arrives once per channel, in event order per order; transient failures are retried,
//! permanent ones fail at once and can be sent again; a rebuild of the notifications
//! projection sends nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use delivery::backoff::Backoff;
use delivery::DeliverySettings;
use delivery_channels::{ChannelSettings, SmtpSettings, WebhookSecret, WebhookSettings};
use ledger::Role;
use ledger_tests::smtp::ReceivedMail;
use ledger_tests::webhook::{generate_secret, ReceivedHook};
use ledger_tests::{
    expect_json, expect_status, poll_until, TestApp, TestReceiver, TestSmtp, ORDER_TOTAL_MINOR,
};
use serde_json::Value;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);
const SENDER: &str = "Orders <orders@shop.example>";

/// Channels to `smtp` and/or `receiver`.
fn channels(
    smtp: Option<&TestSmtp>,
    receiver: Option<(&TestReceiver, &str)>,
) -> anyhow::Result<ChannelSettings> {
    Ok(ChannelSettings {
        smtp: smtp
            .map(|smtp| SmtpSettings::parse(&smtp.url(), SENDER))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        webhooks: receiver
            .map(|(receiver, _)| WebhookSettings::parse(&receiver.url("/hooks")))
            .transpose()
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .collect(),
        webhook_secret: receiver
            .map(|(_, secret)| WebhookSecret::parse(secret))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        ..ChannelSettings::default()
    })
}

/// Delivery that retries quickly.
fn quick() -> DeliverySettings {
    DeliverySettings {
        backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_millis(400) },
        poll_interval: Duration::from_millis(50),
        ..DeliverySettings::default()
    }
}

async fn spawn(channels: ChannelSettings, delivery: DeliverySettings) -> anyhow::Result<TestApp> {
    TestApp::spawn_with(move |settings| {
        settings.roles = Role::ALL.into_iter().chain([Role::Dispatcher]).collect();
        settings.channels = channels.clone();
        settings.delivery = delivery.clone();
    })
    .await
}

/// Every notification the read model holds, in event order.
async fn notifications(app: &TestApp, query: &str) -> anyhow::Result<Vec<Value>> {
    let page = app.notifications(&format!("limit=200&{query}")).await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// Waits until the read model holds `count` notifications and every one is `status`.
async fn until_all(app: &TestApp, count: usize, status: &str) -> anyhow::Result<Vec<Value>> {
    poll_until(DEADLINE, &format!("{count} notifications {status}"), || async {
        let all = notifications(app, "").await?;
        let done = all.len() == count && all.iter().all(|n| n["status"] == status);
        Ok(done.then_some(all))
    })
    .await
}

fn id_of(notification: &Value) -> String {
    notification["id"].as_str().unwrap_or_default().to_owned()
}

/// The notification id a received email carries in its Message-ID.
fn mail_id(mail: &ReceivedMail) -> String {
    let id = mail.message_id().unwrap_or_default();
    id.trim_start_matches('<').split('@').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_notification_of_a_lifecycle_arrives_by_email_and_webhook_once_in_order(
) -> anyhow::Result<()> {
    let smtp = TestSmtp::start().await?;
    let secret = generate_secret();
    let receiver = TestReceiver::start(&secret).await?;
    let app = spawn(channels(Some(&smtp), Some((&receiver, &secret)))?, quick()).await?;

    // Placed, a failed attempt, captured, refunded in part, shipped; and a cancelled one.
    let paid = app.place_order("cus_lifecycle").await?;
    expect_status(app.fail_payment(paid, "pay_0", ORDER_TOTAL_MINOR).await?, 201).await?;
    expect_status(app.capture(paid, "pay_1", ORDER_TOTAL_MINOR).await?, 201).await?;
    expect_status(app.refund(paid, "ref_1", "pay_1", 300).await?, 201).await?;
    expect_status(app.ship(paid).await?, 201).await?;
    let cancelled = app.place_order("cus_lifecycle").await?;
    expect_status(app.cancel(cancelled).await?, 201).await?;

    let expected = until_all(&app, 7, "delivered").await?;
    let mails = smtp.wait_for(7, DEADLINE).await?;
    let hooks = receiver.wait_for(7, DEADLINE).await?;
    assert_eq!(mails.len(), 7, "every email exactly once");
    assert_eq!(hooks.len(), 7, "every webhook exactly once");

    let by_mail: HashMap<String, &ReceivedMail> = mails.iter().map(|m| (mail_id(m), m)).collect();
    let by_hook: HashMap<&str, &ReceivedHook> = hooks.iter().map(|h| (h.id.as_str(), h)).collect();
    assert_eq!(by_mail.len(), 7, "one Message-ID per notification");
    for notification in &expected {
        let id = id_of(notification);
        let mail = by_mail.get(&id).copied().ok_or_else(|| anyhow::anyhow!("no email for {id}"))?;
        assert_eq!(mail.to, vec![notification["recipient"].as_str().unwrap_or_default()]);
        assert_eq!(mail.subject().as_deref(), notification["subject"].as_str());
        assert_eq!(mail.body()?.trim_end(), notification["body"].as_str().unwrap_or_default());
        assert_eq!(mail.message_id(), Some(format!("<{id}@shop.example>")));
        assert!(mail.header("Date").is_some(), "a Date header");
        let hook =
            by_hook.get(id.as_str()).ok_or_else(|| anyhow::anyhow!("no webhook for {id}"))?;
        assert!(hook.verified, "the signature verifies: {hook:?}");
        assert_eq!(hook.body["data"]["id"], notification["id"]);
        assert_eq!(hook.body["data"]["subject"], notification["subject"]);
        assert_eq!(hook.body["data"]["order_id"], notification["order_id"]);
        for channel in ["email", "webhook"] {
            let delivery = notification["deliveries"]
                .as_array()
                .and_then(|all| all.iter().find(|d| d["channel"] == channel))
                .cloned()
                .unwrap_or_default();
            assert_eq!(delivery["status"], "delivered", "{notification}");
            assert_eq!(delivery["attempts"], 1, "{notification}");
        }
    }
    // Per order, in the order of its events, on both channels.
    for order in [paid, cancelled] {
        let in_event_order: Vec<String> =
            notifications(&app, &format!("order_id={order}")).await?.iter().map(id_of).collect();
        let mailed: Vec<String> =
            mails.iter().map(mail_id).filter(|id| in_event_order.contains(id)).collect();
        let hooked: Vec<String> =
            hooks.iter().map(|h| h.id.clone()).filter(|id| in_event_order.contains(id)).collect();
        assert_eq!(mailed, in_event_order, "emails of {order} in event order");
        assert_eq!(hooked, in_event_order, "webhooks of {order} in event order");
    }
    Ok(())
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_it_on_the_third_attempt() -> anyhow::Result<()> {
    let secret = generate_secret();
    let receiver = TestReceiver::start(&secret).await?;
    receiver.answer_next(&[500, 503]);
    let app = spawn(channels(None, Some((&receiver, &secret)))?, quick()).await?;
    app.place_order("cus_flaky_receiver").await?;

    let delivered = until_all(&app, 1, "delivered").await?;
    assert_eq!(delivered[0]["deliveries"][0]["attempts"], 3, "{}", delivered[0]);
    let received = receiver.received();
    assert_eq!(received.iter().map(|h| h.answered).collect::<Vec<_>>(), [500, 503, 200]);
    assert!(received.iter().all(|h| h.id == id_of(&delivered[0])), "the same id every time");
    Ok(())
}

#[tokio::test]
async fn a_refusal_fails_at_once_and_a_resend_delivers_after_the_fix() -> anyhow::Result<()> {
    let secret = generate_secret();
    let receiver = TestReceiver::start(&secret).await?;
    receiver.answer_always(Some(400));
    let app = spawn(channels(None, Some((&receiver, &secret)))?, quick()).await?;
    app.place_order("cus_refused").await?;

    let failed = until_all(&app, 1, "failed").await?;
    let delivery = &failed[0]["deliveries"][0];
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["attempts"], 1, "a 400 is not retried");
    assert!(delivery["last_error"].as_str().is_some_and(|e| e.contains("400")), "{delivery}");
    let filtered = notifications(&app, "status=failed").await?;
    assert_eq!(filtered.len(), 1);

    receiver.answer_always(None);
    let id = id_of(&failed[0]);
    let resent =
        expect_json(app.post(&format!("/v1/admin/notifications/{id}/resend")).send().await?, 202)
            .await?;
    assert_eq!(resent["channels"], serde_json::json!(["webhook"]));
    until_all(&app, 1, "delivered").await?;
    assert_eq!(receiver.received().iter().filter(|h| h.answered == 200).count(), 1);

    // Nothing failed now: a resend is refused, and an unknown id is not found.
    let again = app.post(&format!("/v1/admin/notifications/{id}/resend")).send().await?;
    assert_eq!(again.status(), 409);
    let unknown = app.post(&format!("/v1/admin/notifications/{}/resend", Uuid::new_v4())).send();
    assert_eq!(unknown.await?.status(), 404);
    Ok(())
}

#[tokio::test]
async fn mail_sent_while_the_smtp_server_is_down_arrives_once_after_it_returns(
) -> anyhow::Result<()> {
    let mut smtp = TestSmtp::start().await?;
    // Enough attempts to outlast the outage at this test's quick backoff (the default
    // backoff outlasts minutes).
    let delivery = DeliverySettings { max_attempts: 200, ..quick() };
    let app = spawn(channels(Some(&smtp), None)?, delivery).await?;
    smtp.stop().await?;
    for n in 0..5 {
        let order = app.place_order(&format!("cus_smtp_down_{n}")).await?;
        app.capture(order, "pay_1", 1000).await?;
    }
    // Each order's first message has been tried, and failed, more than once meanwhile;
    // its second waits behind it, untried: an order's messages go out in order.
    poll_until(
        DEADLINE,
        "every order's first message retried while the server is down",
        || async {
            let all = notifications(&app, "").await?;
            let attempts: Vec<i64> =
                all.iter().map(|n| n["deliveries"][0]["attempts"].as_i64().unwrap_or(0)).collect();
            let retried = attempts.iter().filter(|a| **a >= 2).count();
            let waiting = attempts.iter().filter(|a| **a == 0).count();
            Ok((all.len() == 10 && retried == 5 && waiting == 5).then_some(()))
        },
    )
    .await?;
    smtp.start_again().await?;

    until_all(&app, 10, "delivered").await?;
    let mails = smtp.wait_for(10, DEADLINE).await?;
    let ids: HashSet<String> = mails.iter().map(mail_id).collect();
    assert_eq!((mails.len(), ids.len()), (10, 10), "each once");
    Ok(())
}

#[tokio::test]
async fn a_rebuild_of_the_notifications_sends_nothing() -> anyhow::Result<()> {
    let smtp = TestSmtp::start().await?;
    let app = spawn(channels(Some(&smtp), None)?, quick()).await?;
    for n in 0..3 {
        app.place_order(&format!("cus_rebuilt_{n}")).await?;
    }
    until_all(&app, 3, "delivered").await?;

    let started = app.post("/v1/admin/projections/notifications/rebuild").send().await?;
    assert_eq!(started.status(), 202, "{}", started.text().await?);
    poll_until(DEADLINE, "the rebuild to finish", || async {
        let status = expect_json(app.get("/v1/admin/projections").send().await?, 200).await?;
        let done = status["rebuilds"].as_array().is_some_and(|all| {
            all.iter().any(|r| r["projection"] == "notifications" && r["state"] == "done")
        });
        Ok(done.then_some(()))
    })
    .await?;
    // A later order is the marker: once its email is in, anything the rebuild sent would be.
    app.place_order("cus_after_the_rebuild").await?;
    until_all(&app, 4, "delivered").await?;
    let mails = smtp.wait_for(4, DEADLINE).await?;
    assert_eq!(mails.len(), 4, "the rebuild sent nothing again");
    Ok(())
}

#[tokio::test]
async fn an_smtp_4xx_is_retried_and_a_5xx_fails_at_once() -> anyhow::Result<()> {
    let smtp = TestSmtp::start().await?;
    smtp.answer_with(Some("451 4.3.0 try again later"))?;
    let app = spawn(channels(Some(&smtp), None)?, quick()).await?;
    app.place_order("cus_greylisted").await?;
    poll_until(DEADLINE, "the greylisted email tried twice", || async {
        let all = notifications(&app, "").await?;
        let tried = all.first().and_then(|n| n["deliveries"][0]["attempts"].as_i64());
        Ok((tried >= Some(2)).then_some(()))
    })
    .await?;
    smtp.answer_with(None)?;
    let delivered = until_all(&app, 1, "delivered").await?;
    assert_eq!(smtp.wait_for(1, DEADLINE).await?.len(), 1);

    smtp.answer_with(Some("550 5.1.1 no such user"))?;
    app.place_order("cus_unknown_mailbox").await?;
    let refused = poll_until(DEADLINE, "the refused email failed", || async {
        let all = notifications(&app, "status=failed").await?;
        Ok(all.into_iter().next())
    })
    .await?;
    let delivery = &refused["deliveries"][0];
    assert_eq!(delivery["attempts"], 1, "a 5xx is not retried: {delivery}");
    assert!(delivery["last_error"].as_str().is_some_and(|e| e.contains("550")), "{delivery}");
    assert_ne!(refused["id"], delivered[0]["id"]);
    Ok(())
}
