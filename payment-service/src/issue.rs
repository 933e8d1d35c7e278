//! The commands the saga issues, through the command layer like any client's, with what
//! makes them safe to repeat: an idempotency key derived from the step (the provider key
//! of the attempt or refund it records), the triggering event as cause (the event that
//! directly caused the command: the placement for the first charge, the recorded failure
//! for the cancellation after it), the order's correlation id (the business
//! conversation), the actor `process:payments`, and the trace of the step's span (which
//! continues the triggering event's trace).

use commands::{CommandContext, CommandRequest, Idempotency, Outcome};
use domain::{
    CancelOrder, CapturePayment, Command, OrderId, PaymentId, PaymentMethod, PositiveAmount,
    ProviderReference, Reason, RecordPaymentFailure, RefundId, RefundPayment,
};
use trace_context::TraceParent;
use uuid::Uuid;

use crate::error::ServiceError;
use crate::process::{ChargeAttempt, PaymentProcess, RefundAttempt};

/// Who the saga's events name as their actor.
pub const ACTOR: &str = "process:payments";

/// What a card charge is recorded as (the saga charges cards: `payment_method_types=card`).
const METHOD: &str = "card";

/// Where an accepted command's event landed.
pub struct Issued {
    pub event_id: Option<Uuid>,
    pub position: i64,
}

impl Issued {
    /// The event of `event_type` the command appended (or replayed), and the command's
    /// last position.
    pub fn of(outcome: &Outcome, event_type: &str) -> Self {
        let accepted = &outcome.accepted;
        Self {
            event_id: accepted
                .events
                .iter()
                .find(|event| event.event_type == event_type)
                .map(|event| event.event_id),
            position: accepted.position,
        }
    }
}

fn invalid(what: &str, error: domain::ValidationError) -> ServiceError {
    ServiceError::Database(eventstore::StoreError::Invariant(format!(
        "the payment process built an invalid {what}: {error}"
    )))
}

/// A command request keyed `process:payments:{key}`. The fingerprint is the key and the
/// command's parameters, written out: the same step always sends the same.
fn request(
    process: &PaymentProcess,
    command: Command,
    key: &str,
    parameters: String,
) -> CommandRequest {
    let key = format!("{ACTOR}:{key}");
    let fingerprint = format!("{key}|{parameters}").into_bytes();
    CommandRequest {
        order_id: OrderId::from_uuid(process.order_id),
        command,
        idempotency: Some(Idempotency { key, fingerprint }),
        expected_version: None,
        context: CommandContext {
            correlation_id: process.correlation_id.clone(),
            causation_id: Some(process.cause.to_string()),
            actor: Some(ACTOR.to_owned()),
            traceparent: Some(
                trace_context::pass_on(
                    &tracing::Span::current(),
                    process.trace.as_deref().and_then(|value| TraceParent::parse(value).ok()),
                )
                .to_string(),
            ),
        },
    }
}

fn amount(amount_minor: i64) -> Result<PositiveAmount, ServiceError> {
    PositiveAmount::parse("amount_minor", amount_minor).map_err(|e| invalid("amount", e))
}

fn reference(raw: &str) -> Result<ProviderReference, ServiceError> {
    ProviderReference::parse(raw).map_err(|e| invalid("provider reference", e))
}

/// Reasons are bounded: a provider's long message is cut, never refused.
fn reason(text: &str) -> Result<Reason, ServiceError> {
    let cut: String = text.chars().filter(|c| !c.is_control()).take(500).collect();
    Reason::parse(&cut).map_err(|e| invalid("reason", e))
}

pub fn capture(
    process: &PaymentProcess,
    charge: &ChargeAttempt,
    intent_id: &str,
) -> Result<CommandRequest, ServiceError> {
    let payment_id = PaymentId::parse(&charge.payment_id).map_err(|e| invalid("payment id", e))?;
    let method = PaymentMethod::parse(METHOD).map_err(|e| invalid("method", e))?;
    let command = CapturePayment::new(payment_id, amount(charge.amount_minor)?, method)
        .with_provider_reference(reference(intent_id)?);
    let parameters = format!("{}|{}|{intent_id}", charge.payment_id, charge.amount_minor);
    let key = format!("{}:captured", charge.idempotency_key);
    Ok(request(process, Command::CapturePayment(command), &key, parameters))
}

pub fn failure(
    process: &PaymentProcess,
    charge: &ChargeAttempt,
    detail: &str,
    intent_id: Option<&str>,
) -> Result<CommandRequest, ServiceError> {
    let payment_id = PaymentId::parse(&charge.payment_id).map_err(|e| invalid("payment id", e))?;
    let mut command =
        RecordPaymentFailure::new(payment_id, amount(charge.amount_minor)?, reason(detail)?);
    if let Some(intent_id) = intent_id {
        command = command.with_provider_reference(reference(intent_id)?);
    }
    let parameters = format!("{}|{}|{detail}", charge.payment_id, charge.amount_minor);
    let key = format!("{}:failed", charge.idempotency_key);
    Ok(request(process, Command::RecordPaymentFailure(command), &key, parameters))
}

pub fn refund(
    process: &PaymentProcess,
    refund: &RefundAttempt,
    refund_id: &str,
    why: &str,
) -> Result<CommandRequest, ServiceError> {
    let payment_id = PaymentId::parse(&refund.payment_id).map_err(|e| invalid("payment id", e))?;
    // The provider's refund id names the refund in the ledger too (ids are at most 64).
    let id: String = refund_id.chars().take(64).collect();
    let refund_id_value = RefundId::parse(&id).map_err(|e| invalid("refund id", e))?;
    let command = RefundPayment::new(
        refund_id_value,
        payment_id,
        amount(refund.amount_minor)?,
        reason(&format!("order cancelled: {why}"))?,
    )
    .with_provider_reference(reference(refund_id)?);
    let parameters = format!("{}|{}|{refund_id}", refund.payment_id, refund.amount_minor);
    let key = format!("{}:recorded", refund.idempotency_key);
    Ok(request(process, Command::RefundPayment(command), &key, parameters))
}

pub fn cancel(process: &PaymentProcess, why: &str) -> Result<CommandRequest, ServiceError> {
    let command = CancelOrder::new(reason(why)?);
    let key = format!("ledger-{}-cancel", process.order_id);
    Ok(request(process, Command::CancelOrder(command), &key, why.to_owned()))
}
