//! A rebuild's progress, as a `watch` value: the rebuild writes it, the admin endpoint,
//! the console and the command line's progress bar read it.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RebuildPhase {
    /// The bulk replay.
    #[default]
    Replaying,
    /// Keys, indexes and statistics.
    Indexing,
    Watermark,
    /// Applying what was committed since the bulk replay started.
    CatchingUp,
    Swapping,
    /// Every phase ran; the outcome follows.
    Finished,
    Done,
    Cancelled,
    Failed,
}

impl std::fmt::Display for RebuildPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Replaying => "replaying",
            Self::Indexing => "indexing",
            Self::Watermark => "watermark",
            Self::CatchingUp => "catching_up",
            Self::Swapping => "swapping",
            Self::Finished => "finished",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        })
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RebuildStatus {
    pub projection: String,
    pub state: RebuildPhase,
    /// Events in the store when the replay started (it also replays what arrives later).
    pub total: u64,
    pub replayed: u64,
    pub events_per_second: f64,
    pub eta_seconds: Option<f64>,
    /// Orders the bulk replay wrote out and forgot after they had been quiet for its
    /// window, and those of them that had events after all (applied after the bulk phase).
    pub orders_evicted: u64,
    pub orders_revived: u64,
    /// Where the new generation is built (and kept, for a cut).
    pub schema: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// How long each finished phase took, in order.
    pub phases: Vec<PhaseTime>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseTime {
    pub phase: RebuildPhase,
    pub seconds: f64,
}

/// One rebuild's progress; cloned handles share it.
#[derive(Clone, Debug, Default)]
pub struct RebuildProgress(watch::Sender<RebuildStatus>);

impl RebuildProgress {
    pub fn snapshot(&self) -> RebuildStatus {
        self.0.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<RebuildStatus> {
        self.0.subscribe()
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut RebuildStatus)) {
        self.0.send_modify(change);
    }

    /// Ends the current phase (timed from `since`) and starts `next`; returns its start.
    pub(crate) fn enter(&self, next: RebuildPhase, since: Instant) -> Instant {
        let now = Instant::now();
        self.update(|s| {
            s.phases.push(PhaseTime { phase: s.state, seconds: (now - since).as_secs_f64() });
            s.state = next;
        });
        tracing::info!(phase = ?next, "rebuild phase");
        now
    }
}
