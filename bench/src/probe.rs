//! End-to-end probes: about one accepted command in `--e2e-sample` starts a probe that asks
//! the payments read model for that order at the command's stream version
//! (`GET /v1/payments/{id}?min_version=V&wait_ms=5000`, which waits server-side); the time
//! from the command's 201 arriving to the probe's 200 arriving is the latency through the
//! relay, the broker and the projection. At most `--e2e-probes` probes run at once, so
//! that they do not slow down what they measure; a sample drawn while all are busy is
//! skipped and counted (many skips mean slow periods are under-sampled). With held
//! transactions ([`crate::hold`]), the probes of commands accepted while they were open are
//! also counted apart.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::client::Api;
use crate::hold::HoldWindow;
use crate::stats::{Latencies, Summary};

/// Probes that ended: their latency, or how they failed.
#[derive(Debug)]
pub struct Probed {
    pub latency: Latencies,
    /// Answered 504 `projection_lagging`: not applied within 5 s.
    pub timed_out: u64,
    /// Any other answer, or no answer.
    pub failed: u64,
}

impl Probed {
    fn new() -> anyhow::Result<Self> {
        Ok(Self { latency: Latencies::precise()?, timed_out: 0, failed: 0 })
    }

    pub fn report(&self) -> ProbedReport {
        ProbedReport {
            probes: self.latency.count() + self.timed_out + self.failed,
            timed_out: self.timed_out,
            failed: self.failed,
            latency: self.latency.summary(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProbedReport {
    pub probes: u64,
    pub timed_out: u64,
    pub failed: u64,
    pub latency: Summary,
}

/// Every probe; and, when transactions were held, those of the commands accepted while
/// they were open and the others.
#[derive(Debug)]
pub struct EndToEnd {
    pub all: Probed,
    pub held: Option<(Probed, Probed)>,
    /// Drawn while every probe slot was busy.
    pub skipped: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EndToEndReport {
    pub sample_one_in: u32,
    #[serde(flatten)]
    pub all: ProbedReport,
    pub skipped: u64,
    /// Probes of commands accepted while the transactions were held open.
    pub during_held_transactions: Option<ProbedReport>,
    /// The other probes of the same run.
    pub without_held_transactions: Option<ProbedReport>,
}

impl EndToEnd {
    pub fn report(&self, sample_one_in: u32) -> EndToEndReport {
        EndToEndReport {
            sample_one_in,
            all: self.all.report(),
            skipped: self.skipped,
            during_held_transactions: self.held.as_ref().map(|(during, _)| during.report()),
            without_held_transactions: self.held.as_ref().map(|(_, without)| without.report()),
        }
    }
}

pub struct Probes {
    api: Api,
    slots: Arc<Semaphore>,
    capacity: usize,
    end_to_end: Mutex<EndToEnd>,
    hold: Option<Arc<HoldWindow>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Probes {
    pub fn new(api: Api, capacity: usize, hold: Option<Arc<HoldWindow>>) -> anyhow::Result<Self> {
        let held = match hold {
            Some(_) => Some((Probed::new()?, Probed::new()?)),
            None => None,
        };
        Ok(Self {
            api,
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            end_to_end: Mutex::new(EndToEnd { all: Probed::new()?, held, skipped: 0 }),
            hold,
        })
    }

    /// Probes `order_id` at `version`, accepted at `accepted_at`, unless every slot is busy.
    pub fn start(self: &Arc<Self>, order_id: Uuid, version: u32, accepted_at: Instant) {
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            lock(&self.end_to_end).skipped += 1;
            return;
        };
        let probes = Arc::clone(self);
        let path = format!("/v1/payments/{order_id}?min_version={version}&wait_ms=5000");
        tokio::spawn(async move {
            let _permit = permit;
            let result = probes.api.get(&path).await;
            let during = probes.hold.as_ref().is_some_and(|hold| hold.contains(accepted_at));
            let mut end_to_end = lock(&probes.end_to_end);
            let EndToEnd { all, held, .. } = &mut *end_to_end;
            let mut sides: Vec<&mut Probed> = vec![all];
            if let Some((during_hold, without)) = held.as_mut() {
                sides.push(if during { during_hold } else { without });
            }
            for side in sides {
                match &result {
                    Ok(answer) if answer.status.as_u16() == 200 => {
                        side.latency.record(answer.received.duration_since(accepted_at));
                    }
                    Ok(answer) if answer.status.as_u16() == 504 => side.timed_out += 1,
                    Ok(answer) => {
                        tracing::debug!(status = %answer.status, body = %answer.body, "e2e probe");
                        side.failed += 1;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "e2e probe");
                        side.failed += 1;
                    }
                }
            }
        });
    }

    /// Waits for the probes in flight (each waits 5 s at most on the server), for up to
    /// `patience`; returns what they measured.
    pub async fn finish(&self, patience: Duration) -> anyhow::Result<EndToEnd> {
        let all = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        if tokio::time::timeout(patience, self.slots.acquire_many(all)).await.is_err() {
            tracing::warn!(
                "end-to-end probes still running after {patience:?}; reporting without them"
            );
        }
        let held = match self.hold {
            Some(_) => Some((Probed::new()?, Probed::new()?)),
            None => None,
        };
        Ok(std::mem::replace(
            &mut *lock(&self.end_to_end),
            EndToEnd { all: Probed::new()?, held, skipped: 0 },
        ))
    }
}
