//! The one load generator: N clients in a closed loop (each sends its next command when
//! the previous one is answered), each with a [`Workload`] that plans its commands, until
//! told to stop. `ledger bench` drives it with order lifecycles drawn from a mix, and
//! watches every answer through an [`Observer`] (latency histograms, end-to-end probes);
//! the fault specs drive it with placements and captures and audit every [`Outcome`].
//!
//! With `idempotency_keys`, a command carries a fresh key and a throttled (429), timed-out
//! or unavailable (503) attempt, or one lost in transit, is retried up to three times with
//! the *same* key, so a retry never applies a command twice. Without, each command is sent
//! once and what came of it is recorded as it was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::{Answer, Api};
use crate::mix::Kind;
use crate::outcome::{Answered, LoadReport, Outcome};

/// Attempts per command with idempotency keys (the first and two retries).
const ATTEMPTS: u32 = 3;

/// One command to send.
#[derive(Clone, Debug)]
pub struct Command {
    pub kind: Kind,
    pub order_id: Uuid,
    /// Path below the base URL.
    pub path: String,
    pub body: Value,
}

/// What one client sends: its next command, and what it learns from each answer.
pub trait Workload: Send + 'static {
    /// The next command, or `None` when this client has nothing more to send.
    fn next(&mut self, rng: &mut fastrand::Rng) -> Option<Command>;

    /// The final outcome of `command` (after any retries).
    fn answered(&mut self, command: &Command, outcome: &Outcome, rng: &mut fastrand::Rng);
}

/// Sees every attempt as it is answered, across all clients.
pub trait Observer: Send + Sync + 'static {
    /// One attempt: its answer, or `None` when none came (the error says why).
    fn attempt(
        &self,
        command: &Command,
        answer: Result<&Answer, &anyhow::Error>,
        since_start: Duration,
    );
}

/// An observer that looks at nothing.
pub struct Unobserved;

impl Observer for Unobserved {
    fn attempt(&self, _: &Command, _: Result<&Answer, &anyhow::Error>, _: Duration) {}
}

/// When the clients stop sending.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    After(Duration),
    Count(u64),
    /// When [`Load::stop`] is called.
    Manual,
}

#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub clients: u32,
    pub stop: Stop,
    pub idempotency_keys: bool,
    /// Keep every outcome (for audits); the counters are kept either way.
    pub keep_outcomes: bool,
    pub seed: u64,
    /// Commands per second, all clients together, at most: the n-th command is not sent
    /// before `n / rate` seconds into the run (`None`: each as soon as the last is answered).
    pub rate: Option<f64>,
}

#[derive(Default)]
struct Counters {
    tickets: AtomicU64,
    /// Commands scheduled so far under a rate.
    paced: AtomicU64,
    sent: AtomicU64,
    acknowledged: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

struct Shared {
    api: Api,
    options: LoadOptions,
    started: Instant,
    stopping: CancellationToken,
    counters: Counters,
    observer: Arc<dyn Observer>,
    outcomes: Mutex<Vec<Outcome>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Whether a client may send another command.
    fn next_ticket(&self) -> bool {
        if self.stopping.is_cancelled() {
            return false;
        }
        match self.options.stop {
            Stop::After(duration) => self.started.elapsed() < duration,
            Stop::Count(count) => self.counters.tickets.fetch_add(1, Ordering::Relaxed) < count,
            Stop::Manual => true,
        }
    }
}

/// A load running in the background.
pub struct Load {
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `options.clients` clients, each with the workload `workload` makes for its
    /// index.
    pub fn start<W: Workload>(
        api: Api,
        options: LoadOptions,
        workload: impl Fn(u32) -> W,
        observer: Arc<dyn Observer>,
    ) -> Self {
        let shared = Arc::new(Shared {
            api,
            options,
            started: Instant::now(),
            stopping: CancellationToken::new(),
            counters: Counters::default(),
            observer,
            outcomes: Mutex::new(Vec::new()),
        });
        let clients = (0..options.clients)
            .map(|index| tokio::spawn(client(Arc::clone(&shared), index, workload(index))))
            .collect();
        Self { shared, clients }
    }

    pub fn started(&self) -> Instant {
        self.shared.started
    }

    pub fn sent(&self) -> u64 {
        self.shared.counters.sent.load(Ordering::Relaxed)
    }

    pub fn acknowledged(&self) -> u64 {
        self.shared.counters.acknowledged.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.shared.counters.refused.load(Ordering::Relaxed)
    }

    /// Commands that got no answer, or an error that is not a refusal.
    pub fn failed(&self) -> u64 {
        self.shared.counters.failed.load(Ordering::Relaxed)
    }

    /// Commands answered so far.
    pub fn answered(&self) -> u64 {
        self.acknowledged() + self.refused() + self.failed()
    }

    /// The kept outcomes so far that `keep` selects.
    pub fn outcomes_where(&self, keep: impl Fn(&Outcome) -> bool) -> Vec<Outcome> {
        lock(&self.shared.outcomes).iter().filter(|o| keep(o)).cloned().collect()
    }

    /// Waits until `more` further commands have been acknowledged.
    pub async fn wait_for_acknowledged(&self, more: u64, deadline: Duration) -> anyhow::Result<()> {
        let target = self.acknowledged() + more;
        let started = Instant::now();
        while self.acknowledged() < target {
            anyhow::ensure!(
                started.elapsed() < deadline,
                "gave up after {deadline:?} waiting for {target} acknowledged commands"
            );
            // Polling a counter, not waiting for something to happen.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Whether every client has stopped on its own (its stop condition or workload).
    pub fn is_finished(&self) -> bool {
        self.clients.iter().all(JoinHandle::is_finished)
    }

    /// Lets each client finish the command in hand, then reports.
    pub async fn stop(self) -> anyhow::Result<LoadReport> {
        self.shared.stopping.cancel();
        self.finished().await
    }

    /// Waits until every client has stopped, then reports.
    pub async fn finished(self) -> anyhow::Result<LoadReport> {
        for client in self.clients {
            client.await.context("a load client panicked")?;
        }
        let outcomes = std::mem::take(&mut *lock(&self.shared.outcomes));
        Ok(LoadReport { outcomes, duration: self.shared.started.elapsed() })
    }
}

async fn client<W: Workload>(shared: Arc<Shared>, index: u32, mut workload: W) {
    let mut rng = fastrand::Rng::with_seed(
        shared.options.seed ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    while shared.next_ticket() {
        if let Some(rate) = shared.options.rate {
            // Pacing: a schedule of send times, not synchronisation.
            let n = shared.counters.paced.fetch_add(1, Ordering::Relaxed);
            let at = shared.started + Duration::from_secs_f64(n as f64 / rate);
            tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {}
                () = shared.stopping.cancelled() => break,
            }
            if matches!(shared.options.stop, Stop::After(duration) if shared.started.elapsed() >= duration)
            {
                break;
            }
        }
        let Some(command) = workload.next(&mut rng) else { break };
        shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        let sent_at = Instant::now();
        let answered = Answered::of(&send(&shared, &command).await);
        let failed = answered.is_failure();
        let counter = match &answered {
            Answered::Acknowledged { .. } => &shared.counters.acknowledged,
            _ if failed => &shared.counters.failed,
            _ => &shared.counters.refused,
        };
        let outcome = Outcome {
            kind: command.kind,
            order_id: command.order_id,
            sent_at,
            answered_at: Instant::now(),
            answer: answered,
        };
        workload.answered(&command, &outcome, &mut rng);
        if shared.options.keep_outcomes {
            lock(&shared.outcomes).push(outcome);
        }
        counter.fetch_add(1, Ordering::Relaxed);
        if failed {
            // Pacing, not synchronisation: a client facing a dead server should not spin
            // through thousands of refused connections.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = shared.stopping.cancelled() => {}
            }
        }
    }
}

/// Sends a command, with the retries its options allow; the last attempt's answer, or why
/// it got none.
async fn send(shared: &Shared, command: &Command) -> anyhow::Result<Answer> {
    let key = shared.options.idempotency_keys.then(|| Uuid::new_v4().to_string());
    let attempts = if key.is_some() { ATTEMPTS } else { 1 };
    let mut attempt = 1;
    loop {
        let result = shared.api.command(&command.path, &command.body, key.as_deref()).await;
        shared.observer.attempt(command, result.as_ref(), shared.started.elapsed());
        let retry_in = match result {
            Ok(answer) => {
                if !answer.retryable() || attempt >= attempts {
                    return Ok(answer);
                }
                answer.retry_after.unwrap_or(Duration::from_millis(50)).min(Duration::from_secs(1))
            }
            Err(error) if attempt >= attempts => return Err(error),
            Err(_) => Duration::from_millis(100 * u64::from(attempt)),
        };
        attempt += 1;
        tokio::time::sleep(retry_in).await;
    }
}
