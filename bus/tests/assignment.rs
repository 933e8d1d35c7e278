//! The consumer loop watches its assignment: a member that holds no partition says so, and
//! a member starved of work it should have been given rejoins its group, whatever the
//! coordinator does. Against an in-memory subscriber, on tokio's paused clock.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bus::{
    BusError, Consumer, ConsumerSettings, ConsumerState, ConsumerStatus, Delivery, Failure,
    Handler, HandlerError, Subscriber,
};
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Group {
    assigned: Vec<i32>,
    /// Partitions a rejoin brings.
    after_rejoin: Vec<i32>,
    rejoins: u32,
}

struct MemberOf(Arc<Mutex<Group>>);

impl Subscriber for MemberOf {
    async fn recv(&mut self) -> Result<Delivery, BusError> {
        std::future::pending().await
    }

    async fn commit(&mut self, _: &[Delivery]) -> Result<(), BusError> {
        Ok(())
    }

    async fn park(&mut self, _: &Delivery, _: &Failure) -> Result<(), BusError> {
        Ok(())
    }

    fn assignment(&self) -> Option<Vec<i32>> {
        Some(self.0.lock().unwrap_or_else(PoisonError::into_inner).assigned.clone())
    }

    fn rejoin(&mut self) -> Result<(), BusError> {
        let mut group = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        group.rejoins += 1;
        group.assigned = group.after_rejoin.clone();
        Ok(())
    }
}

/// A handler with nothing to do, or one whose work the store keeps doing without it.
struct Idle {
    lags: bool,
    store_does_its_work: bool,
}

impl Handler for Idle {
    fn name(&self) -> &'static str {
        "idle"
    }

    async fn handle(&self, _: &[Delivery]) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn parked(&self, _: &Delivery, _: &Failure) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn lags(&self) -> bool {
        self.lags
    }

    fn undelivered_at(&self) -> Option<DateTime<Utc>> {
        self.store_does_its_work.then(Utc::now)
    }
}

const ORPHANED_AFTER: Duration = Duration::from_secs(15);

/// Runs the loop for `long` of paused time; returns the group and the last status.
async fn run_for(group: Group, handler: Idle, long: Duration) -> (Group, ConsumerStatus) {
    let group = Arc::new(Mutex::new(group));
    let status = watch::Sender::new(ConsumerStatus::default());
    let settings =
        ConsumerSettings { orphaned_after: ORPHANED_AFTER, ..ConsumerSettings::default() };
    let consumer = Consumer::new(handler, settings, status.clone());
    let shutdown = CancellationToken::new();
    let member = Arc::clone(&group);
    let running = tokio::spawn(consumer.run(
        move || {
            let member = Arc::clone(&member);
            async move { Ok(MemberOf(member)) }
        },
        shutdown.clone(),
    ));
    tokio::time::sleep(long).await;
    let last = status.borrow().clone();
    shutdown.cancel();
    running.await.expect("the consumer loop does not panic");
    let group = std::mem::take(&mut *group.lock().unwrap_or_else(PoisonError::into_inner));
    (group, last)
}

/// A member the coordinator gave nothing while its projection lags.
fn starved() -> (Group, Idle) {
    let group = Group { after_rejoin: vec![0, 1], ..Group::default() };
    (group, Idle { lags: true, store_does_its_work: true })
}

#[tokio::test(start_paused = true)]
async fn a_member_without_partitions_says_so_and_rejoins_once_starved() {
    let (group, handler) = starved();
    let (group, early) = run_for(group, handler, Duration::from_secs(1)).await;
    assert_eq!(group.rejoins, 0);
    assert_eq!(early.state, ConsumerState::Unassigned);
    assert_eq!(early.partitions, Some(vec![]));

    let (group, handler) = starved();
    let (group, later) = run_for(group, handler, ORPHANED_AFTER + Duration::from_secs(2)).await;
    assert_eq!(group.rejoins, 1);
    assert_eq!(later.state, ConsumerState::Running);
    assert_eq!(later.partitions, Some(vec![0, 1]));
}

#[tokio::test(start_paused = true)]
async fn a_member_holding_partitions_rejoins_when_the_store_keeps_doing_its_work() {
    // The coordinator dropped a dead member and never rebalanced: its partitions are
    // nobody's, and the catch-up applies their events from the store.
    let group = Group { assigned: vec![0, 1], after_rejoin: vec![0, 1, 2, 3], ..Group::default() };
    let handler = Idle { lags: false, store_does_its_work: true };
    let (group, status) = run_for(group, handler, ORPHANED_AFTER + Duration::from_secs(2)).await;
    assert_eq!(group.rejoins, 1);
    assert_eq!(status.partitions, Some(vec![0, 1, 2, 3]));
}

#[tokio::test(start_paused = true)]
async fn a_member_that_is_not_starved_stays_put() {
    // More members than partitions, and the others keep up: nothing to rejoin for.
    let spare = Group::default();
    let (spare, status) =
        run_for(spare, Idle { lags: false, store_does_its_work: false }, ORPHANED_AFTER * 4).await;
    assert_eq!(spare.rejoins, 0);
    assert_eq!(status.state, ConsumerState::Unassigned);

    // A member holding partitions that nobody else's work reaches.
    let holding = Group { assigned: vec![0], ..Group::default() };
    let (holding, status) =
        run_for(holding, Idle { lags: true, store_does_its_work: false }, ORPHANED_AFTER * 4).await;
    assert_eq!(holding.rejoins, 0);
    assert_eq!(status.state, ConsumerState::Running);
}
