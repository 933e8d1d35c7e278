//! The load phase of `ledger bench`: the load generator ([`crate::engine`]) with N clients,
//! each running order lifecycles ([`Lifecycles`], over a [`Book`] of its own orders) as
//! fast as the ledger answers, until the duration is over or the command count is reached,
//! or Ctrl-C (the commands in flight finish; a second Ctrl-C exits at once). Every command
//! carries an `Idempotency-Key` and is retried with it; every attempt is counted.
//!
//! End-to-end latency: about one accepted command in `--e2e-sample` is probed through
//! the read model ([`crate::probe`]). With `--hold-transactions`, transactions that cannot
//! append are held open in the middle of the load ([`crate::hold`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use super::client::{Answer, Api};
use super::engine::{self, Command, Load, LoadOptions, Observer, Workload};
use super::hold::{self, HoldWindow};
use super::mix::{Kind, Mix};
use super::orders::{Book, Planned};
use super::outcome::{Answered, Outcome};
use super::probe::{EndToEnd, Probes};
use super::process::{self, Memory};
use super::scrape::Scrape;
use super::stats::Recorder;

/// End-to-end probes running at once, at most, unless told otherwise.
pub const DEFAULT_PROBES: usize = 4;
/// Placed orders remembered for the as-of queries.
const PLACED_SAMPLES: usize = 5_000;

pub use engine::Stop;

#[derive(Clone, Debug)]
pub struct LoadSettings {
    pub clients: u32,
    pub stop: Stop,
    pub mix: Mix,
    pub invalid_percent: u32,
    /// One accepted command in this many is probed end to end (0: none).
    pub e2e_sample: u32,
    /// Probes running at once, at most.
    pub e2e_probes: usize,
    pub seed: u64,
    /// Commands per second in all, at most (`None`: as fast as they are answered).
    pub rate: Option<f64>,
    /// Transactions to hold open in the middle of the load.
    pub hold: Option<HoldSettings>,
}

/// `--hold-transactions`: for how long, on which server.
#[derive(Clone, Debug)]
pub struct HoldSettings {
    pub database_url: String,
    pub hold: Duration,
}

/// An order placed during the run, and when its 201 arrived (for as-of cuts).
#[derive(Clone, Debug)]
pub struct Placed {
    pub order_id: Uuid,
    pub at: DateTime<Utc>,
}

/// Taken the moment the last client stops, before the probes drain, so that rates and
/// CPU time cover the load and nothing after it.
#[derive(Debug)]
pub struct AtEnd {
    pub at: Instant,
    pub metrics: anyhow::Result<Scrape>,
    /// The ledger's CPU seconds so far and its memory, when it runs on this machine.
    pub ledger_cpu_seconds: Option<f64>,
    pub ledger_memory: Option<Memory>,
    /// This process's (the load generator's) CPU seconds so far.
    pub generator_cpu_seconds: Option<f64>,
    /// The whole machine's CPU accounting.
    pub cpu: Option<process::CpuSample>,
}

/// What the load phase measured.
#[derive(Debug)]
pub struct LoadOutcome {
    pub at_end: AtEnd,
    pub recorder: Recorder,
    pub end_to_end: EndToEnd,
    /// From the first command sent to the last answer received.
    pub elapsed: Duration,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub placed: Vec<Placed>,
    /// The lowest and highest global positions the ledger answered.
    pub positions: Option<(i64, i64)>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// The first transport error, to say what went wrong when many did.
    pub first_transport_error: Option<String>,
}

/// What the clients share besides the load generator's own counters.
struct Shared {
    api: Api,
    settings: LoadSettings,
    started: Instant,
    recorder: Mutex<Recorder>,
    probes: Arc<Probes>,
    placed: Mutex<(u64, Vec<Placed>)>,
    lowest_position: AtomicI64,
    highest_position: AtomicI64,
    first_transport_error: Mutex<Option<String>>,
    /// The recorder's first error (a latency it could not hold), reported at the end.
    recording_error: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn remember_placed(&self, rng: &mut fastrand::Rng, order_id: Uuid) {
        let placed = Placed { order_id, at: Utc::now() };
        let mut guard = lock(&self.placed);
        let (seen, samples) = &mut *guard;
        *seen += 1;
        // Reservoir sampling: every placed order is equally likely to be kept.
        if samples.len() < PLACED_SAMPLES {
            samples.push(placed);
        } else {
            let slot = rng.u64(0..*seen) as usize;
            if slot < PLACED_SAMPLES {
                samples[slot] = placed;
            }
        }
    }

    fn record(&self, result: anyhow::Result<()>) {
        if let Err(error) = result {
            lock(&self.recording_error).get_or_insert_with(|| format!("{error:#}"));
        }
    }
}

/// Every attempt's outcome and latency, by command and second.
struct Recording(Arc<Shared>);

impl Observer for Recording {
    fn attempt(
        &self,
        command: &Command,
        answer: Result<&Answer, &anyhow::Error>,
        since_start: Duration,
    ) {
        let second = since_start.as_secs() as usize;
        let shared = &self.0;
        match answer {
            Ok(answer) => shared.record(lock(&shared.recorder).record(
                command.kind,
                &answer.outcome(),
                Some(answer.latency),
                second,
            )),
            Err(error) => {
                shared.record(lock(&shared.recorder).record(
                    command.kind,
                    "transport",
                    None,
                    second,
                ));
                lock(&shared.first_transport_error).get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
}

/// One client's order lifecycles, planned against the book of its own orders.
struct Lifecycles {
    shared: Arc<Shared>,
    book: Book,
    /// The command in flight, as planned (with what it will do to the book).
    planned: Option<Planned>,
}

impl Workload for Lifecycles {
    fn next(&mut self, rng: &mut fastrand::Rng) -> Option<Command> {
        let settings = &self.shared.settings;
        let planned = self.book.plan(rng, &settings.mix, settings.invalid_percent);
        {
            let mut recorder = lock(&self.shared.recorder);
            match recorder.stats(planned.kind) {
                Ok(stats) => {
                    stats.deliberately_invalid += u64::from(planned.deliberately_invalid);
                    stats.fallbacks += u64::from(planned.fallback);
                }
                Err(error) => self.shared.record(Err(error)),
            }
        }
        let command = Command {
            kind: planned.kind,
            order_id: planned.order_id,
            path: planned.path.clone(),
            body: planned.body.clone(),
        };
        self.planned = Some(planned);
        Some(command)
    }

    fn answered(&mut self, _: &Command, outcome: &Outcome, rng: &mut fastrand::Rng) {
        let Some(planned) = self.planned.take() else { return };
        match &outcome.answer {
            Answered::Acknowledged { stream_version, position, .. } => {
                self.book.accepted(&planned);
                self.shared.lowest_position.fetch_min(*position, Ordering::Relaxed);
                self.shared.highest_position.fetch_max(*position, Ordering::Relaxed);
                if planned.kind == Kind::Place {
                    self.shared.remember_placed(rng, planned.order_id);
                }
                let sample = self.shared.settings.e2e_sample;
                if sample > 0 && rng.u32(0..sample) == 0 {
                    self.shared.probes.start(
                        planned.order_id,
                        *stream_version,
                        outcome.answered_at,
                    );
                }
            }
            // A refusal the client did not expect means its view of the order is off.
            Answered::Refused { .. } if !outcome.answer.is_failure() => {
                if !planned.deliberately_invalid {
                    self.book.forget(planned.order_id);
                }
            }
            _ => self.book.forget(planned.order_id),
        }
    }
}

/// Runs the load and returns what it measured.
pub async fn run(
    api: Api,
    settings: LoadSettings,
    ledger_pid: Option<u32>,
) -> anyhow::Result<LoadOutcome> {
    let started_at = Utc::now();
    let hold_window = settings.hold.as_ref().map(|_| Arc::new(HoldWindow::default()));
    let shared = Arc::new(Shared {
        api: api.clone(),
        settings: settings.clone(),
        started: Instant::now(),
        recorder: Mutex::new(Recorder::new()?),
        probes: Arc::new(Probes::new(api.clone(), settings.e2e_probes, hold_window.clone())?),
        placed: Mutex::new((0, Vec::new())),
        lowest_position: AtomicI64::new(i64::MAX),
        highest_position: AtomicI64::new(i64::MIN),
        first_transport_error: Mutex::new(None),
        recording_error: Mutex::new(None),
    });
    let options = LoadOptions {
        clients: settings.clients,
        stop: settings.stop,
        idempotency_keys: true,
        keep_outcomes: false,
        seed: settings.seed,
        rate: settings.rate,
    };
    let holding = match (&settings.hold, &hold_window, settings.stop) {
        (Some(held), Some(window), Stop::After(duration)) => {
            let (held, window) = (held.clone(), Arc::clone(window));
            let after = duration.saturating_sub(held.hold) / 2;
            Some(tokio::spawn(async move {
                hold::hold(&held.database_url, after, held.hold, &window).await
            }))
        }
        _ => None,
    };
    let load = Load::start(
        api,
        options,
        |_| Lifecycles { shared: Arc::clone(&shared), book: Book::new(), planned: None },
        Arc::new(Recording(Arc::clone(&shared))),
    );
    let bar = progress_bar(settings.stop)?;
    show_progress(&load, &shared, &bar).await;
    let started = load.started();
    load.stop().await?;
    let elapsed = started.elapsed();
    let finished_at = Utc::now();
    let at_end = AtEnd {
        at: Instant::now(),
        ledger_cpu_seconds: ledger_pid.and_then(process::cpu_seconds),
        ledger_memory: ledger_pid.and_then(process::memory),
        generator_cpu_seconds: process::cpu_seconds(std::process::id()),
        cpu: process::CpuSample::take(ledger_pid),
        metrics: shared.api.metrics().await,
    };
    bar.finish_and_clear();
    if let Some(error) = lock(&shared.recording_error).clone() {
        anyhow::bail!("recording the load: {error}");
    }
    if let Some(holding) = holding {
        holding
            .await
            .map_err(anyhow::Error::from)
            .and_then(|held| held)
            .context("--hold-transactions")?;
    }
    let end_to_end = shared.probes.finish(Duration::from_secs(15)).await?;

    let lowest = shared.lowest_position.load(Ordering::Relaxed);
    let highest = shared.highest_position.load(Ordering::Relaxed);
    let recorder = std::mem::replace(&mut *lock(&shared.recorder), Recorder::new()?);
    let placed = std::mem::take(&mut lock(&shared.placed).1);
    let first_transport_error = lock(&shared.first_transport_error).clone();
    Ok(LoadOutcome {
        at_end,
        recorder,
        end_to_end,
        elapsed,
        started_at,
        finished_at,
        placed,
        positions: (lowest <= highest).then_some((lowest, highest)),
        interrupted: crate::interrupt::interrupted(),
        first_transport_error,
    })
}

fn progress_bar(stop: Stop) -> anyhow::Result<ProgressBar> {
    let (length, unit) = match stop {
        Stop::After(duration) => (duration.as_secs().max(1), "s"),
        Stop::Count(count) => (count, "cmd"),
        Stop::Manual => (0, "s"),
    };
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}"
        ))?
        .progress_chars("=> "),
    );
    Ok(bar)
}

/// Updates the bar four times a second until the load is over (or interrupted):
/// commands/s over the last second, outcomes so far. Without a terminal (the bar is
/// hidden) a line goes to stderr every 5 s instead.
async fn show_progress(load: &Load, shared: &Shared, bar: &ProgressBar) {
    let mut window = std::collections::VecDeque::from([(Instant::now(), 0u64)]);
    let mut last_line = Instant::now();
    while !load.is_finished() && !crate::interrupt::interrupted() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        let answered = load.answered();
        window.push_back((now, answered));
        while window.len() > 5 {
            window.pop_front();
        }
        let rate = match (window.front(), window.back()) {
            (Some((then, before)), Some((now, after))) if now > then => {
                (after - before) as f64 / now.duration_since(*then).as_secs_f64()
            }
            _ => 0.0,
        };
        let message = format!(
            "{rate:>6.0} cmd/s  {} accepted  {} refused  {} errors",
            load.acknowledged(),
            load.refused(),
            load.failed(),
        );
        match shared.settings.stop {
            Stop::Count(_) => bar.set_position(answered),
            Stop::After(_) | Stop::Manual => bar.set_position(shared.started.elapsed().as_secs()),
        }
        if bar.is_hidden() && now.duration_since(last_line) >= Duration::from_secs(5) {
            last_line = now;
            eprintln!("[{:>4.0} s] {message}", shared.started.elapsed().as_secs_f64());
        }
        bar.set_message(message);
    }
}
