//! Supervision of the background tasks (the relay, the consumers).
//!
//! Each task runs until shutdown. One that ends before that — it returned, or it panicked
//! — is a bug or a dependency the task could not cope with: it is logged with its cause,
//! reported as `restarting` (so `/readyz` turns 503 naming it), and started afresh after a
//! capped exponential backoff. Its status channels outlive it, so what the API shows stays
//! connected across restarts.

use std::future::Future;
use std::time::Duration;

use api::{TaskHealth, TaskState};
use backon::BackoffBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Supervisor {
    shutdown: CancellationToken,
    health: watch::Sender<Vec<TaskHealth>>,
    monitors: Vec<JoinHandle<()>>,
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown, health: watch::Sender::new(Vec::new()), monitors: Vec::new() }
    }

    pub fn health(&self) -> watch::Receiver<Vec<TaskHealth>> {
        self.health.subscribe()
    }

    /// Runs the task `make` builds, until shutdown; builds and starts it again whenever
    /// it ends early.
    pub fn supervise<F, Fut>(&mut self, name: &str, mut make: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let index = self.health.borrow().len();
        self.health.send_modify(|tasks| {
            tasks.push(TaskHealth {
                task: name.to_owned(),
                state: TaskState::Running,
                restarts: 0,
                last_error: None,
            })
        });
        let (shutdown, health, name) =
            (self.shutdown.clone(), self.health.clone(), name.to_owned());
        self.monitors.push(tokio::spawn(async move {
            let mut backoff = backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(30))
                .with_jitter()
                .without_max_times()
                .build();
            loop {
                let ended = tokio::spawn(make(shutdown.child_token())).await;
                if shutdown.is_cancelled() {
                    set(&health, index, TaskState::Stopped, None);
                    return;
                }
                let cause = match ended {
                    Ok(()) => "it ended before shutdown".to_owned(),
                    Err(error) if error.is_panic() => match error.into_panic().downcast::<String>()
                    {
                        Ok(message) => format!("it panicked: {message}"),
                        Err(payload) => match payload.downcast::<&str>() {
                            Ok(message) => format!("it panicked: {message}"),
                            Err(_) => "it panicked".to_owned(),
                        },
                    },
                    Err(error) => format!("it was cancelled: {error}"),
                };
                tracing::error!(task = %name, %cause, "a background task stopped; restarting it");
                set(&health, index, TaskState::Restarting, Some(cause));
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => {
                        set(&health, index, TaskState::Stopped, None);
                        return;
                    }
                }
                set(&health, index, TaskState::Running, None);
            }
        }));
    }

    /// Waits for every task to finish after shutdown was signalled.
    pub async fn stopped(self) {
        futures_util::future::join_all(self.monitors).await;
    }
}

fn set(
    health: &watch::Sender<Vec<TaskHealth>>,
    index: usize,
    state: TaskState,
    error: Option<String>,
) {
    health.send_modify(|tasks| {
        if let Some(task) = tasks.get_mut(index) {
            if state == TaskState::Restarting {
                task.restarts += 1;
            }
            task.state = state;
            if error.is_some() {
                task.last_error = error;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Polls `health` until `done` holds for the only task, or fails after 10 s.
    async fn until(
        health: &mut watch::Receiver<Vec<TaskHealth>>,
        done: impl Fn(&TaskHealth) -> bool,
    ) -> TaskHealth {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(task) = health.borrow_and_update().first().filter(|t| done(t)) {
                    return task.clone();
                }
                if health.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        });
        match waited.await {
            Ok(task) => task,
            Err(_) => panic!("the task never got there: {:?}", health.borrow()),
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_is_reported_and_started_again() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone());
        let starts = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&starts);
        supervisor.supervise("flaky", move |stop| {
            let start = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if start == 0 {
                    panic!("the first run fails");
                }
                stop.cancelled().await;
            }
        });
        let mut health = supervisor.health();
        let restarted =
            until(&mut health, |t| t.restarts == 1 && t.state == TaskState::Running).await;
        assert!(restarted.last_error.as_deref().is_some_and(|e| e.contains("the first run fails")));
        assert_eq!(starts.load(Ordering::SeqCst), 2);

        shutdown.cancel();
        supervisor.stopped().await;
        assert_eq!(health.borrow().first().map(|t| t.state), Some(TaskState::Stopped));
    }

    #[tokio::test]
    async fn a_task_that_returns_early_is_started_again_too() {
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(shutdown.clone());
        supervisor.supervise("quitter", |_| async {});
        let mut health = supervisor.health();
        let task = until(&mut health, |t| t.restarts >= 2).await;
        assert!(task.last_error.as_deref().is_some_and(|e| e.contains("ended before shutdown")));
        shutdown.cancel();
        supervisor.stopped().await;
    }
}
