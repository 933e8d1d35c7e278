//! The registry of projections: one enum, with each projection's name, tables and
//! dispatch. Everything that chooses a projection at run time (the consumers started by
//! a process, a rebuild, a re-drive, the status report, the command line) goes through it.

use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};

use crate::apply::{apply, Durability, Outcome};
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::notifications::Notifications;
use crate::payments::Payments;
use crate::projection::Projection;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionKind {
    Notifications,
    Payments,
}

impl ProjectionKind {
    /// Every projection, by name.
    pub const ALL: [Self; 2] = [Self::Notifications, Self::Payments];

    /// Stable: the consumer group, the dedupe key, the admin and command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Notifications => Notifications.name(),
            Self::Payments => Payments.name(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The read model's tables (what a rebuild creates anew and swaps in).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Self::Notifications => Notifications.tables(),
            Self::Payments => Payments.tables(),
        }
    }

    /// Applies `events` through this projection, each exactly once (see [`apply`]).
    pub async fn apply(
        self,
        transaction: &Transaction<'_>,
        events: &[ProjectedEvent],
        durability: Durability,
        origin: &str,
    ) -> Result<Outcome, ApplyError> {
        match self {
            Self::Notifications => {
                apply(transaction, &Notifications, events, durability, origin).await
            }
            Self::Payments => apply(transaction, &Payments, events, durability, origin).await,
        }
    }
}

impl std::fmt::Display for ProjectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
