//! The Stripe adapter against the stand-in over real HTTP: the contract both halves keep.
//! Each spec names the outcome the process manager will act on.

use std::time::{Duration, Instant};

use payment_provider::stripe::{Stripe, StripeSettings};
use payment_provider::{
    ChargeOutcome, ChargeRequest, DeclineKind, PaymentProvider, ProviderError, RefundOutcome,
    RefundRequest,
};
use payment_standin::{Options, Scripted, StandIn};

async fn standin() -> anyhow::Result<StandIn> {
    StandIn::start(Options::default()).await
}

fn adapter(base_url: &str, api_key: &str, timeout: Duration) -> anyhow::Result<Stripe> {
    let settings = StripeSettings { base_url: base_url.parse()?, api_key: api_key.into(), timeout };
    Ok(Stripe::new(settings)?)
}

fn stripe(standin: &StandIn) -> anyhow::Result<Stripe> {
    adapter(&standin.url(), standin.api_key(), Duration::from_secs(5))
}

fn charge(key: &str, payment_method: &str) -> ChargeRequest {
    ChargeRequest {
        order_id: "order-7".into(),
        amount_minor: 2500,
        currency: "EUR".into(),
        payment_method: payment_method.into(),
        idempotency_key: key.into(),
    }
}

fn refund(key: &str, intent_id: &str, amount_minor: i64) -> RefundRequest {
    RefundRequest { intent_id: intent_id.into(), amount_minor, idempotency_key: key.into() }
}

fn succeeded_intent(outcome: &ChargeOutcome) -> anyhow::Result<String> {
    match outcome {
        ChargeOutcome::Succeeded { intent_id, .. } => Ok(intent_id.clone()),
        other => anyhow::bail!("expected a success, got {other:?}"),
    }
}

fn is_unknown<T>(result: &Result<T, ProviderError>) -> bool {
    matches!(result, Err(ProviderError::Unknown { .. }))
}

/// Polls until `condition` holds, for at most a few seconds.
async fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

#[tokio::test]
async fn a_good_card_is_charged_once_with_the_order_on_it() -> anyhow::Result<()> {
    let standin = standin().await?;
    let outcome = stripe(&standin)?.charge(&charge("key-1", "pm_card_visa")).await?;

    let ChargeOutcome::Succeeded { intent_id, charge_id } = outcome else {
        anyhow::bail!("expected a success, got {outcome:?}");
    };
    let charges = standin.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].intent_id, intent_id);
    assert_eq!(Some(&charges[0].charge_id), charge_id.as_ref());
    assert_eq!(charges[0].order_id.as_deref(), Some("order-7"));
    assert_eq!((charges[0].amount, charges[0].currency.as_str()), (2500, "eur"));
    assert_eq!(charges[0].idempotency_key.as_deref(), Some("key-1"));
    Ok(())
}

#[tokio::test]
async fn a_charge_repeated_with_the_same_key_is_the_same_intent_and_one_charge(
) -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    let first = stripe.charge(&charge("key-1", "pm_card_visa")).await?;
    let again = stripe.charge(&charge("key-1", "pm_card_visa")).await?;
    assert_eq!(first, again);
    assert_eq!(standin.charges().len(), 1);
    Ok(())
}

#[tokio::test]
async fn declines_are_classified_soft_or_hard() -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    let cases = [
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", DeclineKind::Soft),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", DeclineKind::Soft),
        ("pm_card_chargeDeclined", "card_declined", DeclineKind::Hard),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", DeclineKind::Hard),
        ("pm_card_chargeDeclinedFraudulent", "card_declined", DeclineKind::Hard),
        ("pm_card_authenticationRequired", "requires_action", DeclineKind::Hard),
    ];
    for (index, (payment_method, code, kind)) in cases.into_iter().enumerate() {
        let outcome = stripe.charge(&charge(&format!("key-{index}"), payment_method)).await?;
        let ChargeOutcome::Declined(decline) = outcome else {
            anyhow::bail!("{payment_method} should be declined, got {outcome:?}");
        };
        assert_eq!((decline.code.as_str(), decline.kind), (code, kind), "{payment_method}");
        assert!(decline.intent_id.is_some_and(|id| id.starts_with("pi_")), "{payment_method}");
    }
    assert!(standin.charges().is_empty());
    Ok(())
}

#[tokio::test]
async fn scripted_declines_of_a_good_card_are_classified_too() -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    standin.script("pm_card_visa", vec![Scripted::soft_decline(), Scripted::hard_decline()]);
    let kinds = [
        stripe.charge(&charge("key-1", "pm_card_visa")).await?,
        stripe.charge(&charge("key-2", "pm_card_visa")).await?,
    ]
    .map(|outcome| match outcome {
        ChargeOutcome::Declined(decline) => Some(decline.kind),
        _ => None,
    });
    assert_eq!(kinds, [Some(DeclineKind::Soft), Some(DeclineKind::Hard)]);
    Ok(())
}

#[tokio::test]
async fn an_unknown_payment_method_is_a_hard_decline() -> anyhow::Result<()> {
    let standin = standin().await?;
    let outcome = stripe(&standin)?.charge(&charge("key-1", "pm_card_nobody_has")).await?;
    let ChargeOutcome::Declined(decline) = outcome else {
        anyhow::bail!("expected a decline, got {outcome:?}");
    };
    assert_eq!((decline.code.as_str(), decline.kind), ("resource_missing", DeclineKind::Hard));
    Ok(())
}

#[tokio::test]
async fn an_outage_is_unknown_and_the_same_key_charges_once_after_it() -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    standin.set_outage(true);
    assert!(is_unknown(&stripe.charge(&charge("key-1", "pm_card_visa")).await));
    standin.set_outage(false);
    succeeded_intent(&stripe.charge(&charge("key-1", "pm_card_visa")).await?)?;
    assert_eq!(standin.charges().len(), 1);
    Ok(())
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_unknown_and_not_charged() -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    standin.script("pm_card_visa", vec![Scripted::ServerError, Scripted::RateLimited]);
    assert!(is_unknown(&stripe.charge(&charge("key-1", "pm_card_visa")).await));
    assert!(is_unknown(&stripe.charge(&charge("key-1", "pm_card_visa")).await));
    assert!(standin.charges().is_empty());
    succeeded_intent(&stripe.charge(&charge("key-1", "pm_card_visa")).await?)?;
    assert_eq!(standin.charges().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_charge_whose_answer_never_came_is_found_by_asking_again_with_the_same_key(
) -> anyhow::Result<()> {
    let standin = standin().await?;
    let impatient = adapter(&standin.url(), standin.api_key(), Duration::from_millis(300))?;
    standin.script("pm_card_visa", vec![Scripted::ChargeThenStall(Duration::from_secs(10))]);

    assert!(is_unknown(&impatient.charge(&charge("key-1", "pm_card_visa")).await));
    assert!(eventually(|| standin.charges().len() == 1).await, "the stand-in charged");

    let retried = impatient.charge(&charge("key-1", "pm_card_visa")).await?;
    assert_eq!(succeeded_intent(&retried)?, standin.charges()[0].intent_id);
    assert_eq!(standin.charges().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_processing_charge_is_pending_until_retrieved_as_succeeded() -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    standin.script("pm_card_visa", vec![Scripted::Processing { retrieves: 0 }]);
    let outcome = stripe.charge(&charge("key-1", "pm_card_visa")).await?;
    let ChargeOutcome::Pending { intent_id } = outcome else {
        anyhow::bail!("expected pending, got {outcome:?}");
    };
    assert!(standin.charges().is_empty());
    let retrieved = stripe.retrieve(&intent_id).await?;
    assert_eq!(succeeded_intent(&retrieved)?, intent_id);
    assert_eq!(standin.charges().len(), 1);
    Ok(())
}

#[tokio::test]
async fn retrieving_an_intent_the_provider_does_not_know_is_refused() -> anyhow::Result<()> {
    let standin = standin().await?;
    let result = stripe(&standin)?.retrieve("pi_nobody_made").await;
    assert!(matches!(result, Err(ProviderError::Refused { status: 404, .. })), "{result:?}");
    Ok(())
}

#[tokio::test]
async fn a_refund_repeated_with_the_same_key_refunds_once() -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    let intent_id = succeeded_intent(&stripe.charge(&charge("key-1", "pm_card_visa")).await?)?;

    let first = stripe.refund(&refund("refund-1", &intent_id, 1000)).await?;
    let again = stripe.refund(&refund("refund-1", &intent_id, 1000)).await?;
    assert!(
        matches!(first, RefundOutcome::Refunded { ref refund_id } if refund_id.starts_with("re_"))
    );
    assert_eq!(first, again);
    let refunds = standin.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!((refunds[0].intent_id.as_str(), refunds[0].amount), (intent_id.as_str(), 1000));
    Ok(())
}

#[tokio::test]
async fn refunding_more_than_is_left_is_refused() -> anyhow::Result<()> {
    let standin = standin().await?;
    let stripe = stripe(&standin)?;
    let intent_id = succeeded_intent(&stripe.charge(&charge("key-1", "pm_card_visa")).await?)?;

    let too_much = stripe.refund(&refund("refund-1", &intent_id, 2501)).await?;
    assert!(
        matches!(too_much, RefundOutcome::Refused { ref code, .. } if code == "amount_too_large"),
        "{too_much:?}"
    );
    stripe.refund(&refund("refund-2", &intent_id, 2500)).await?;
    let nothing_left = stripe.refund(&refund("refund-3", &intent_id, 1)).await?;
    assert!(
        matches!(nothing_left, RefundOutcome::Refused { ref code, .. } if code == "charge_already_refunded"),
        "{nothing_left:?}"
    );
    assert_eq!(standin.refunds().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_with_401() -> anyhow::Result<()> {
    let standin = standin().await?;
    let wrong = adapter(&standin.url(), "sk_test_not_ours", Duration::from_secs(5))?;
    let result = wrong.charge(&charge("key-1", "pm_card_visa")).await;
    assert!(matches!(result, Err(ProviderError::Refused { status: 401, .. })), "{result:?}");
    assert!(standin.charges().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_unknown() -> anyhow::Result<()> {
    // A port that was free a moment ago, with nothing listening on it now.
    let vacated = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let unreachable = adapter(&format!("http://{vacated}"), "sk_test", Duration::from_secs(2))?;
    assert!(is_unknown(&unreachable.charge(&charge("key-1", "pm_card_visa")).await));
    Ok(())
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_unknown() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let garbage = axum::Router::new().fallback(|| async { "<html>surely not a payment intent" });
    let server = tokio::spawn(async move { axum::serve(listener, garbage).await });

    let confused = adapter(&format!("http://{address}"), "sk_test", Duration::from_secs(2))?;
    assert!(is_unknown(&confused.charge(&charge("key-1", "pm_card_visa")).await));
    assert!(is_unknown(&confused.retrieve("pi_1").await));
    assert!(is_unknown(&confused.refund(&refund("refund-1", "pi_1", 1)).await));
    server.abort();
    Ok(())
}
