//! What came of each command a load sent, and the report of a whole load run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::client::Answer;
use crate::mix::Kind;

/// The final answer to one command, as a client would act on it.
#[derive(Clone, Debug)]
pub enum Answered {
    /// 201: what the command appended.
    Acknowledged { stream_version: u32, position: i64, event_ids: Vec<Uuid> },
    /// Any other status, with what a client would act on.
    Refused {
        status: u16,
        code: Option<String>,
        content_type: Option<String>,
        retry_after: Option<Duration>,
    },
    /// No HTTP answer at all: refused connection, reset, or the client's timeout.
    NoAnswer { error: String, timed_out: bool },
}

impl Answered {
    pub fn of(result: &anyhow::Result<Answer>) -> Self {
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => {
                let timed_out = error.chain().any(|cause| {
                    cause.downcast_ref::<reqwest::Error>().is_some_and(|e| e.is_timeout())
                });
                return Self::NoAnswer { error: format!("{error:#}"), timed_out };
            }
        };
        if answer.status.as_u16() == 201 {
            let stream_version =
                answer.body["stream_version"].as_u64().and_then(|v| u32::try_from(v).ok());
            let position = answer.body["position"].as_i64();
            if let (Some(stream_version), Some(position)) = (stream_version, position) {
                let event_ids = answer.body["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|event| event["event_id"].as_str()?.parse().ok())
                    .collect();
                return Self::Acknowledged { stream_version, position, event_ids };
            }
        }
        Self::Refused {
            status: answer.status.as_u16(),
            code: answer.code.clone(),
            content_type: answer.content_type.clone(),
            retry_after: answer.retry_after,
        }
    }

    /// Neither acknowledged nor refused for the client's mistake: no answer, a 5xx, a 429.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::Acknowledged { .. } => false,
            Self::Refused { status, .. } => !(400..500).contains(status) || *status == 429,
            Self::NoAnswer { .. } => true,
        }
    }
}

/// One command and what came of it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub kind: Kind,
    pub order_id: Uuid,
    pub sent_at: Instant,
    pub answered_at: Instant,
    pub answer: Answered,
}

impl Outcome {
    pub fn latency(&self) -> Duration {
        self.answered_at - self.sent_at
    }

    pub fn is_acknowledged(&self) -> bool {
        matches!(self.answer, Answered::Acknowledged { .. })
    }

    /// `201`, `503 service_unavailable`, `no answer (timeout)`, …: how errors are counted.
    pub fn label(&self) -> String {
        match &self.answer {
            Answered::Acknowledged { .. } => "201".to_owned(),
            Answered::Refused { status, code, .. } => {
                format!("{status} {}", code.as_deref().unwrap_or("(no code)"))
            }
            Answered::NoAnswer { timed_out: true, .. } => "no answer (timeout)".to_owned(),
            Answered::NoAnswer { .. } => "no answer".to_owned(),
        }
    }
}

/// Everything a load run kept.
pub struct LoadReport {
    pub outcomes: Vec<Outcome>,
    pub duration: Duration,
}

impl LoadReport {
    pub fn sent(&self) -> usize {
        self.outcomes.len()
    }

    pub fn acknowledged(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.is_acknowledged())
    }

    /// Orders whose placement was acknowledged.
    pub fn placed_orders(&self) -> Vec<Uuid> {
        self.acknowledged().filter(|o| o.kind == Kind::Place).map(|o| o.order_id).collect()
    }

    /// Failures counted by [`Outcome::label`].
    pub fn errors(&self) -> BTreeMap<String, usize> {
        let mut errors = BTreeMap::new();
        for outcome in self.outcomes.iter().filter(|o| !o.is_acknowledged()) {
            *errors.entry(outcome.label()).or_insert(0) += 1;
        }
        errors
    }

    /// The `p`-th percentile (0–100) of acknowledged commands' latencies.
    pub fn latency_percentile(&self, p: f64) -> Duration {
        let mut latencies: Vec<Duration> = self.acknowledged().map(Outcome::latency).collect();
        latencies.sort_unstable();
        crate::measure::percentile(&latencies, p / 100.0)
    }

    /// One line: sent, acknowledged, errors by status, latencies.
    pub fn summary(&self) -> String {
        format!(
            "sent={} acknowledged={} errors={:?} latency_p50={:?} p99={:?} max={:?} over {:.1?}",
            self.sent(),
            self.acknowledged().count(),
            self.errors(),
            self.latency_percentile(50.0),
            self.latency_percentile(99.0),
            self.latency_percentile(100.0),
            self.duration
        )
    }
}
