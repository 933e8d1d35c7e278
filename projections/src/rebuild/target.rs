//! What a rebuild builds: the whole history, swapped in; or the history up to a cut, kept
//! for investigation.

use chrono::{DateTime, Utc};
use eventstore::Cut;

/// What to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The whole history, then swap it in as the live generation.
    Live,
    /// The history up to a cut, kept in the rebuild schema for investigation.
    Cut(Cut),
}

/// Whether an event at `position`, appended at `recorded_at`, is inside `target`.
pub(crate) fn inside(target: Target, position: i64, recorded_at: DateTime<Utc>) -> bool {
    match target {
        Target::Live | Target::Cut(Cut::Latest | Cut::Version(_)) => true,
        Target::Cut(Cut::Position(cut)) => position <= cut,
        Target::Cut(Cut::Time(cut)) => recorded_at <= cut,
        Target::Cut(Cut::Both(at, cut)) => position <= at && recorded_at <= cut,
    }
}
