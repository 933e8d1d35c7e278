//! Latency histograms and their summaries.
//!
//! Latencies are recorded in microseconds into HDR histograms (`hdrhistogram`): constant
//! memory whatever the sample count, and percentiles exact to three significant digits,
//! which sorting a vector of samples would only match at the cost of keeping them all.
//! The per-second histograms behind the SVG chart keep two digits: there are many of them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::mix::Kind;

/// The largest latency recorded as itself; anything slower is recorded as this (60 s).
const HIGHEST_MICROS: u64 = 60_000_000;

/// A latency histogram in microseconds, 1 µs to 60 s.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Latencies {
    /// Three significant digits: for the figures of the report.
    pub fn precise() -> anyhow::Result<Latencies> {
        Ok(Latencies(Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)?))
    }

    /// Two significant digits: for the many per-second buckets.
    pub fn coarse() -> anyhow::Result<Latencies> {
        Ok(Latencies(Histogram::new_with_bounds(1, HIGHEST_MICROS, 2)?))
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn add(&mut self, other: &Latencies) -> anyhow::Result<()> {
        self.0.add(&other.0)?;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> Summary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if self.0.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p95_ms: ms(self.0.value_at_quantile(0.95)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
        }
    }
}

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What the clients saw, per command: every answer by status, latency of every answer.
#[derive(Debug)]
pub struct CommandStats {
    /// Latency of every answered request, whatever its status.
    pub latency: Latencies,
    /// Outcomes: `201`, `201 replayed`, `409 rule_violated`, `transport`, …
    pub outcomes: BTreeMap<String, u64>,
    /// Commands sent where they break a rule on purpose (a refusal is expected).
    pub deliberately_invalid: u64,
    /// Places sent because the mix chose a command no order was ready for.
    pub fallbacks: u64,
}

impl CommandStats {
    fn new() -> anyhow::Result<CommandStats> {
        Ok(CommandStats {
            latency: Latencies::precise()?,
            outcomes: BTreeMap::new(),
            deliberately_invalid: 0,
            fallbacks: 0,
        })
    }

    pub fn accepted(&self) -> u64 {
        self.outcomes.iter().filter(|(outcome, _)| outcome.starts_with("201")).map(|(_, n)| n).sum()
    }

    pub fn requests(&self) -> u64 {
        self.outcomes.values().sum()
    }
}

/// Everything the load phase records, shared by the clients behind one mutex (a record
/// takes well under a microsecond; the clients spend milliseconds waiting for answers).
#[derive(Debug)]
pub struct Recorder {
    pub commands: BTreeMap<Kind, CommandStats>,
    /// All commands, by the second (since the start) their answer arrived.
    pub timeline: Vec<Latencies>,
}

impl Recorder {
    pub fn new() -> anyhow::Result<Recorder> {
        let mut commands = BTreeMap::new();
        for kind in Kind::ALL {
            commands.insert(kind, CommandStats::new()?);
        }
        Ok(Recorder { commands, timeline: Vec::new() })
    }

    pub fn stats(&mut self, kind: Kind) -> anyhow::Result<&mut CommandStats> {
        Ok(match self.commands.entry(kind) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => entry.insert(CommandStats::new()?),
        })
    }

    /// Records an answered request (`latency` is `None` for one that got no answer).
    pub fn record(
        &mut self,
        kind: Kind,
        outcome: &str,
        latency: Option<Duration>,
        second: usize,
    ) -> anyhow::Result<()> {
        let stats = self.stats(kind)?;
        *stats.outcomes.entry(outcome.to_owned()).or_default() += 1;
        if let Some(latency) = latency {
            stats.latency.record(latency);
            while self.timeline.len() <= second {
                self.timeline.push(Latencies::coarse()?);
            }
            self.timeline[second].record(latency);
        }
        Ok(())
    }

    /// All commands together.
    pub fn overall(&self) -> anyhow::Result<Latencies> {
        let mut all = Latencies::precise()?;
        for stats in self.commands.values() {
            all.add(&stats.latency)?;
        }
        Ok(all)
    }

    /// p50/p95/p99 of each one-second bucket, for the chart.
    pub fn seconds(&self) -> Vec<SecondBucket> {
        self.timeline
            .iter()
            .enumerate()
            .map(|(second, latencies)| {
                let summary = latencies.summary();
                SecondBucket {
                    second: second as u64,
                    commands: summary.count,
                    p50_ms: summary.p50_ms,
                    p95_ms: summary.p95_ms,
                    p99_ms: summary.p99_ms,
                }
            })
            .collect()
    }
}

/// One second of the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SecondBucket {
    /// Seconds since the start of the load.
    pub second: u64,
    /// Answers that arrived in that second.
    pub commands: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_hundred_milliseconds() -> anyhow::Result<()> {
        let mut latencies = Latencies::precise()?;
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 100);
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.001;
        assert!(close(summary.p50_ms, 50.0), "{summary:?}");
        assert!(close(summary.p95_ms, 95.0), "{summary:?}");
        assert!(close(summary.p99_ms, 99.0), "{summary:?}");
        assert!(close(summary.max_ms, 100.0), "{summary:?}");
        assert!(close(summary.mean_ms, 50.5), "{summary:?}");
        Ok(())
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros_and_huge_values_saturate() -> anyhow::Result<()> {
        let mut latencies = Latencies::coarse()?;
        assert_eq!(latencies.summary(), Summary::default());
        latencies.record(Duration::from_secs(3600));
        assert!(latencies.summary().max_ms <= 60_000.0 * 1.01);
        Ok(())
    }

    #[test]
    fn the_recorder_buckets_by_second_and_counts_outcomes() -> anyhow::Result<()> {
        let mut recorder = Recorder::new()?;
        recorder.record(Kind::Place, "201", Some(Duration::from_millis(2)), 0)?;
        recorder.record(Kind::Place, "201", Some(Duration::from_millis(4)), 2)?;
        recorder.record(Kind::Ship, "409 rule_violated", Some(Duration::from_millis(3)), 2)?;
        recorder.record(Kind::Ship, "transport", None, 2)?;
        let seconds = recorder.seconds();
        assert_eq!(seconds.iter().map(|s| s.commands).collect::<Vec<_>>(), [1, 0, 2]);
        assert_eq!(recorder.commands[&Kind::Place].accepted(), 2);
        assert_eq!(recorder.commands[&Kind::Ship].accepted(), 0);
        assert_eq!(recorder.commands[&Kind::Ship].requests(), 2);
        assert_eq!(recorder.overall()?.count(), 3);
        Ok(())
    }
}
