//! The saga's worker: claims the processes that are due and takes their steps, one at a
//! time, writing the state after each.
//!
//! A step that calls the provider is always preceded by a write that fixes what it sends
//! (the attempt with its idempotency key and amount, the refund with its key), and
//! followed by a write of what came back. A crash anywhere in between leaves a state from
//! which the same step is taken again with the same keys: the provider answers a repeated
//! key with the first result (one charge, one refund), and the command layer answers a
//! repeated command key with the first events (one `PaymentCaptured`). See
//! `docs/payment-service.md` for the whole argument.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::{CommandError, CommandService};
use deadpool_postgres::Pool;
use domain::{Fulfilment, Order, Rule};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trace_context::TraceParent;
use tracing::Instrument;

use crate::error::ServiceError;
use crate::issue::{self, Issued};
use crate::process::{ChargeAttempt, Ended, PaymentProcess, Step};
use crate::provider::{ChargeOutcome, ChargeRequest, DeclineKind, PaymentProvider, ProviderError};
use crate::settings::ServiceSettings;
use crate::status::ServiceStatus;
use crate::store::{self, Stored};

mod refunds;

/// Steps one claim may take before the process goes back to the queue (a guard against a
/// step that never settles; a normal charge takes three, a cancellation two per payment).
const STEPS_PER_CLAIM: usize = 16;

pub struct Worker<P> {
    pool: Pool,
    commands: CommandService,
    provider: Arc<P>,
    settings: ServiceSettings,
    status: watch::Sender<ServiceStatus>,
    wake: Arc<Notify>,
}

/// Whether the worker goes on with the same process after writing its state.
enum Next {
    Continue,
    Stop,
}

impl<P: PaymentProvider> Worker<P> {
    pub fn new(
        pool: Pool,
        commands: CommandService,
        provider: Arc<P>,
        settings: ServiceSettings,
        status: watch::Sender<ServiceStatus>,
        wake: Arc<Notify>,
    ) -> Self {
        Self { pool, commands, provider, settings, status, wake }
    }

    /// Keeps up to `concurrency` processes advancing, each on a task of its own: as one
    /// finishes, more due ones are claimed, so a slow provider call holds up only its own
    /// order (and a claim waiting for a connection never stops the steps that hold one).
    pub async fn run(self, shutdown: CancellationToken) {
        self.status.send_modify(|status| status.running = true);
        let worker = Arc::new(self);
        let mut running = JoinSet::new();
        while !shutdown.is_cancelled() {
            let free = worker.settings.concurrency.saturating_sub(running.len());
            let mut pause = Duration::ZERO;
            if free > 0 {
                match worker.claim(free).await {
                    Ok(claimed) => {
                        if claimed.is_empty() && running.is_empty() {
                            pause = worker.until_next_due().await;
                        }
                        for stored in claimed {
                            let worker = worker.clone();
                            let span = step_span(&stored.process);
                            running.spawn(
                                async move { worker.advance(stored).await }.instrument(span),
                            );
                        }
                    }
                    Err(error) => {
                        worker.failed("the payment service could not claim its work", &error);
                        pause = worker.settings.poll;
                    }
                }
            }
            if running.is_empty() && pause.is_zero() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = worker.wake.notified() => {}
                () = tokio::time::sleep(pause), if !pause.is_zero() && running.is_empty() => {}
                Some(joined) = running.join_next(), if !running.is_empty() => worker.finished(joined),
            }
        }
        // Steps under way finish (their provider calls are bounded by the timeout).
        while let Some(joined) = running.join_next().await {
            worker.finished(joined);
        }
        worker.status.send_modify(|status| status.running = false);
    }

    fn finished(&self, joined: Result<Result<(), ServiceError>, tokio::task::JoinError>) {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                self.failed("a payment process step failed; it is taken again later", &error)
            }
            Err(error) => tracing::error!(%error, "a payment process step panicked"),
        }
        self.status.send_modify(|status| {
            status.advanced += 1;
            status.last_advanced_at = Some(Utc::now());
        });
    }

    fn failed(&self, what: &str, error: &ServiceError) {
        let error = error.chain();
        tracing::warn!(%error, "{what}");
        self.status.send_modify(|status| status.last_error = Some(error));
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Stored>, ServiceError> {
        let client = self.pool.get().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        store::claim_due(&client, limit, self.settings.lease).await
    }

    /// How long to sleep when nothing is due: until the next process is, at most `poll`.
    async fn until_next_due(&self) -> Duration {
        let next = match self.pool.get().await {
            Ok(client) => store::next_due(&client).await.ok().flatten(),
            Err(_) => None,
        };
        match next {
            Some(due) => (due - Utc::now()).to_std().unwrap_or_default().min(self.settings.poll),
            None => self.settings.poll,
        }
        .max(Duration::from_millis(10))
    }

    /// Takes the claimed process's steps until it waits, ends or changes under it.
    async fn advance(&self, stored: Stored) -> Result<(), ServiceError> {
        let Stored { mut process, mut revision, .. } = stored;
        for _ in 0..STEPS_PER_CLAIM {
            let next = match self.step(&mut process, Utc::now()).await {
                Ok(next) => next,
                Err(error) => {
                    // The store or the command layer failed: try again after a pause, from
                    // the stored state (what this step learned is learned again).
                    let client = self.pool.get().await?;
                    store::release(&client, process.order_id, revision, self.settings.poll).await?;
                    return Err(error);
                }
            };
            let keep = matches!(next, Next::Continue);
            let client = self.pool.get().await?;
            match store::save(&client, &process, Some(revision), keep).await? {
                Some(saved) => revision = saved,
                // The consumer changed the process meanwhile: its state wins, and the
                // next round repeats this step from it with the same keys.
                None => return Ok(()),
            }
            if !keep {
                return Ok(());
            }
        }
        let client = self.pool.get().await?;
        store::release(&client, process.order_id, revision, Duration::ZERO).await
    }

    /// One step: resolve the charge in flight if there is one, else do what the step says.
    async fn step(
        &self,
        process: &mut PaymentProcess,
        now: DateTime<Utc>,
    ) -> Result<Next, ServiceError> {
        if let Some(charge) = process.charge.clone() {
            return self.resolve_charge(process, &charge, now).await;
        }
        let (order, position) = self.order(process).await?;
        let Order::Placed(order) = order else {
            process.retry_later(
                "the order is not in the store yet".into(),
                self.settings.poll,
                now,
            );
            return Ok(Next::Stop);
        };
        match process.step.clone() {
            Step::Charging => match &order.fulfilment {
                Fulfilment::Cancelled { .. } | Fulfilment::Shipped { .. } => {
                    process.finish(Step::Closed, position);
                    Ok(Next::Stop)
                }
                Fulfilment::Cancelling { reason } => {
                    process.step = Step::Cancelling { reason: reason.to_string() };
                    Ok(Next::Continue)
                }
                Fulfilment::Open if order.outstanding_minor() == 0 => {
                    process.finish(Step::Paid, position);
                    Ok(Next::Stop)
                }
                Fulfilment::Open => {
                    if process.payment_method.is_none() {
                        process.finish(Step::Closed, position);
                        return Ok(Next::Stop);
                    }
                    // Written before the provider is called: a crash after the charge
                    // finds the key.
                    process.begin_charge(order.outstanding_minor(), order.currency().code(), now);
                    Ok(Next::Continue)
                }
            },
            Step::Cancelling { reason } => {
                self.cancel(process, &order, &reason, position, now).await
            }
            Step::Paid | Step::Cancelled | Step::Closed | Step::Stuck { .. } => {
                process.due_at = None;
                Ok(Next::Stop)
            }
        }
    }

    /// The order as the store has it now, and the position of its last event.
    async fn order(&self, process: &PaymentProcess) -> Result<(Order, i64), ServiceError> {
        let history = self.commands.store().load(process.order_id, eventstore::Cut::Latest).await?;
        let position = history.last().map_or(process.through_position, |e| e.global_position);
        let (order, _) = commands::rehydrate::fold_all(&history)?;
        Ok((order, position))
    }

    async fn resolve_charge(
        &self,
        process: &mut PaymentProcess,
        charge: &ChargeAttempt,
        now: DateTime<Utc>,
    ) -> Result<Next, ServiceError> {
        if charge.succeeded {
            return self.record_capture(process, charge, now).await;
        }
        let started = std::time::Instant::now();
        let answer = match &charge.intent_id {
            // The provider named the intent (it was processing): look it up.
            Some(intent_id) => self.provider.retrieve(intent_id).await,
            // Same key, same parameters: the first charge's result, or the charge itself.
            None => self.provider.charge(&charge_request(process, charge)).await,
        };
        metrics::histogram!("ledger_payment_provider_seconds", "call" => "charge")
            .record(started.elapsed().as_secs_f64());
        match answer {
            // Recorded at once: were the process to die first, the same key would find the
            // same charge again.
            Ok(ChargeOutcome::Succeeded { intent_id, .. }) => {
                process.charge_succeeded(intent_id, now);
                match process.charge.clone() {
                    Some(charge) => self.record_capture(process, &charge, now).await,
                    None => Ok(Next::Continue),
                }
            }
            Ok(ChargeOutcome::Pending { intent_id }) => {
                metrics::counter!("ledger_payment_charges_total", "outcome" => "pending")
                    .increment(1);
                process.outcome_unknown(
                    Some(intent_id),
                    "processing".into(),
                    &self.settings.policy,
                    now,
                );
                Ok(Next::Stop)
            }
            Ok(ChargeOutcome::Declined(decline)) => {
                let soft = decline.kind == DeclineKind::Soft;
                let detail = decline.describe();
                let reference = decline.intent_id.clone();
                self.record_failure(process, charge, soft, detail, reference, now).await
            }
            Err(ProviderError::Unknown { reason, retry_after }) => {
                metrics::counter!("ledger_payment_charges_total", "outcome" => "unknown")
                    .increment(1);
                tracing::warn!(order_id = %process.order_id, attempt = charge.number, %reason,
                    "the charge's outcome is unknown; asking again with the same key");
                process.outcome_unknown(None, reason, &self.settings.policy, now);
                if let Some(after) = retry_after {
                    process.due_at = process.due_at.map(|due| due.max(now + after));
                }
                Ok(Next::Stop)
            }
            // The provider refused the request itself (an amount it does not accept, a
            // parameter it rejects): this charge can never be made as asked.
            Err(ProviderError::Refused { status, code, message }) => {
                let detail = format!("refused by the provider ({status} {code}): {message}");
                self.record_failure(process, charge, false, detail, None, now).await
            }
        }
    }

    async fn record_capture(
        &self,
        process: &mut PaymentProcess,
        charge: &ChargeAttempt,
        now: DateTime<Utc>,
    ) -> Result<Next, ServiceError> {
        let intent_id = charge.intent_id.clone().unwrap_or_default();
        match self.commands.execute(issue::capture(process, charge, &intent_id)?).await {
            Ok(outcome) => {
                metrics::counter!("ledger_payment_charges_total", "outcome" => "succeeded")
                    .increment(1);
                let issued = Issued::of(&outcome, "PaymentCaptured");
                process.attempt_recorded(
                    Ended::Succeeded,
                    issued.event_id,
                    issued.position,
                    &self.settings.policy,
                    now,
                );
                // The capture settled the order: nothing left to look at.
                let settled = Issued::of(&outcome, "OrderFullyPaid").event_id.is_some();
                if settled && process.step == Step::Charging {
                    process.finish(Step::Paid, issued.position);
                    return Ok(Next::Stop);
                }
                Ok(Next::Continue)
            }
            Err(CommandError::Rejected(Rule::PaymentAlreadyCaptured)) => {
                process.attempt_recorded(
                    Ended::Succeeded,
                    None,
                    process.through_position,
                    &self.settings.policy,
                    now,
                );
                Ok(Next::Continue)
            }
            // The money was taken but the order no longer takes it (cancelled, shipped, or
            // paid by other means meanwhile): give it back.
            Err(CommandError::Rejected(rule)) => {
                self.return_charge(process, charge, &intent_id, rule.code(), now).await
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn record_failure(
        &self,
        process: &mut PaymentProcess,
        charge: &ChargeAttempt,
        soft: bool,
        detail: String,
        intent_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Next, ServiceError> {
        let outcome = if soft { "soft_decline" } else { "hard_decline" };
        metrics::counter!("ledger_payment_charges_total", "outcome" => outcome).increment(1);
        let request = issue::failure(process, charge, &detail, intent_id.as_deref())?;
        let (event_id, position) = match self.commands.execute(request).await {
            Ok(outcome) => {
                let issued = Issued::of(&outcome, "PaymentFailed");
                (issued.event_id, issued.position)
            }
            // The order moved on (cancelled, shipped): the failure is still the saga's fact.
            Err(CommandError::Rejected(_)) => (None, process.through_position),
            Err(error) => return Err(error.into()),
        };
        let mut charge = charge.clone();
        charge.intent_id = intent_id.or(charge.intent_id);
        process.charge = Some(charge);
        process.attempt_recorded(
            Ended::Declined { soft, detail },
            event_id,
            position,
            &self.settings.policy,
            now,
        );
        Ok(Next::Continue)
    }
}

/// The span a claim's steps run in: a child of the span that received the event driving
/// the process, so the trace goes on from the request to the provider calls and the
/// commands the steps send.
fn step_span(process: &PaymentProcess) -> tracing::Span {
    let span = tracing::info_span!(
        "saga_step",
        order_id = %process.order_id,
        step = process.step.name(),
        correlation_id = %process.correlation_id,
    );
    if let Some(parent) = process.trace.as_deref().and_then(|value| TraceParent::parse(value).ok())
    {
        trace_context::continue_from(&span, parent, None);
    }
    span
}

fn charge_request(process: &PaymentProcess, charge: &ChargeAttempt) -> ChargeRequest {
    ChargeRequest {
        order_id: process.order_id.to_string(),
        amount_minor: charge.amount_minor,
        currency: charge.currency.clone(),
        payment_method: process.payment_method.clone().unwrap_or_default(),
        idempotency_key: charge.idempotency_key.clone(),
    }
}
