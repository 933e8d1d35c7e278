//! The worker's refunds: giving back what a cancelled order holds, one captured payment at
//! a time, then cancelling; and giving back a charge the order would not take.

use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::CommandError;
use domain::{Fulfilment, Rule};

use super::{Next, Worker};
use crate::error::ServiceError;
use crate::issue::{self, Issued};
use crate::process::{ChargeAttempt, Ended, PaymentProcess, Step};
use crate::provider::{PaymentProvider, ProviderError, RefundOutcome, RefundRequest};

impl<P: PaymentProvider> Worker<P> {
    pub(super) async fn return_charge(
        &self,
        process: &mut PaymentProcess,
        charge: &ChargeAttempt,
        intent_id: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Next, ServiceError> {
        let request = RefundRequest {
            intent_id: intent_id.to_owned(),
            amount_minor: charge.amount_minor,
            idempotency_key: format!("{}-return", charge.idempotency_key),
        };
        match self.provider.refund(&request).await {
            Ok(RefundOutcome::Refunded { refund_id }) => {
                tracing::warn!(order_id = %process.order_id, %intent_id, %refund_id, %why,
                    "a charge the order could not take was given back");
                let detail =
                    format!("charge given back ({refund_id}): the order refused it ({why})");
                // Not a decline of the customer's card: the order itself moved on, so the
                // step stays what it was and looks at the order again.
                let step = process.step.clone();
                process.attempt_recorded(
                    Ended::Declined { soft: false, detail },
                    None,
                    process.through_position,
                    &self.settings.policy,
                    now,
                );
                process.step = step;
                process.due_at = Some(now);
                Ok(Next::Continue)
            }
            Ok(RefundOutcome::Refused { code, message, .. }) => {
                process.stuck(format!(
                    "charge {intent_id} could not be recorded ({why}) nor given back ({code}: {message})"
                ));
                Ok(Next::Stop)
            }
            Err(error) => {
                process.retry_later(error.to_string(), self.settings.poll, now);
                Ok(Next::Stop)
            }
        }
    }

    /// Gives back each captured payment through the provider, recording each refund, then
    /// cancels the order.
    pub(super) async fn cancel(
        &self,
        process: &mut PaymentProcess,
        order: &domain::PlacedOrder,
        reason: &str,
        position: i64,
        now: DateTime<Utc>,
    ) -> Result<Next, ServiceError> {
        match order.fulfilment {
            Fulfilment::Cancelled { .. } => {
                process.finish(Step::Cancelled, position);
                return Ok(Next::Stop);
            }
            Fulfilment::Shipped { .. } => {
                process.stuck("the order shipped before its cancellation finished".into());
                return Ok(Next::Stop);
            }
            Fulfilment::Open | Fulfilment::Cancelling { .. } => {}
        }
        let holding = order.payments.iter().find(|(_, payment)| payment.refundable_minor() > 0);
        let Some((payment_id, payment)) = holding else {
            return match self.commands.execute(issue::cancel(process, reason)?).await {
                Ok(outcome) => {
                    let issued = Issued::of(&outcome, "OrderCancelled");
                    process.finish(Step::Cancelled, issued.position.max(position));
                    Ok(Next::Stop)
                }
                Err(CommandError::Rejected(Rule::OrderCancelled)) => {
                    process.finish(Step::Cancelled, position);
                    Ok(Next::Stop)
                }
                // Money arrived meanwhile: refund it too.
                Err(CommandError::Rejected(Rule::CapturedFundsNotRefunded { .. })) => {
                    Ok(Next::Continue)
                }
                Err(CommandError::Rejected(rule)) => {
                    process.stuck(format!("the order cannot be cancelled: {rule}"));
                    Ok(Next::Stop)
                }
                Err(error) => Err(error.into()),
            };
        };
        let Some(intent_id) = payment.provider_reference.as_ref().map(|r| r.to_string()) else {
            process.stuck(format!(
                "payment {payment_id} holds money but was not taken through the provider: refund \
                 it by hand and record the refund"
            ));
            return Ok(Next::Stop);
        };
        let refund =
            process.refund_for(payment_id.as_str(), &intent_id, payment.refundable_minor());
        let Some(refund_id) = refund.refund_id.clone() else {
            let request = RefundRequest {
                intent_id: refund.intent_id.clone(),
                amount_minor: refund.amount_minor,
                idempotency_key: refund.idempotency_key.clone(),
            };
            let started = std::time::Instant::now();
            let answer = self.provider.refund(&request).await;
            metrics::histogram!("ledger_payment_provider_seconds", "call" => "refund")
                .record(started.elapsed().as_secs_f64());
            return match answer {
                Ok(RefundOutcome::Refunded { refund_id }) => {
                    metrics::counter!("ledger_payment_refunds_total", "outcome" => "refunded")
                        .increment(1);
                    process.refund_made(&refund.idempotency_key, refund_id);
                    Ok(Next::Continue)
                }
                Ok(RefundOutcome::Refused { code, message, .. }) => {
                    metrics::counter!("ledger_payment_refunds_total", "outcome" => "refused")
                        .increment(1);
                    process.stuck(format!(
                        "the provider refused the refund of {payment_id}: {code}: {message}"
                    ));
                    Ok(Next::Stop)
                }
                Err(ProviderError::Refused { status, code, message }) => {
                    process.stuck(format!("the provider refused the refund of {payment_id} ({status} {code}): {message}"));
                    Ok(Next::Stop)
                }
                Err(ProviderError::Unknown { reason, .. }) => {
                    let unknown_for = Duration::from_secs(1);
                    process.retry_later(
                        reason,
                        self.settings.policy.unknown_retry_after(unknown_for),
                        now,
                    );
                    Ok(Next::Stop)
                }
            };
        };
        let request = issue::refund(process, &refund, &refund_id, reason)?;
        let (event_id, at) = match self.commands.execute(request).await {
            Ok(outcome) => {
                let issued = Issued::of(&outcome, "PaymentRefunded");
                (issued.event_id, issued.position)
            }
            // Already recorded, or the money was meanwhile refunded by other means.
            Err(CommandError::Rejected(
                Rule::RefundAlreadyRecorded | Rule::RefundExceedsRefundable { .. },
            )) => (None, position),
            Err(error) => return Err(error.into()),
        };
        process.refund_recorded(&refund.idempotency_key, event_id, at);
        Ok(Next::Continue)
    }
}
