//! `ledger projections rebuild`: the rebuild with a progress bar (rate and ETA) on the
//! terminal; Ctrl-C cancels it, leaving the live generation as it was.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use eventstore::Cut;
use projections::rebuild::{self, Target};
use projections::ProjectionKind;

use crate::config::DatabaseArgs;

/// A projection's name, or `all`.
fn projection_or_all() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        ProjectionKind::ALL.iter().map(|kind| kind.name()).chain([ALL]),
    )
}

const ALL: &str = "all";

#[derive(clap::Args)]
pub struct RebuildArgs {
    /// Which projection to rebuild, or `all`.
    #[arg(value_parser = projection_or_all())]
    projection: String,
    /// Build as of this global position (kept in `rebuild_<name>`, not swapped in).
    #[arg(long, conflicts_with = "as_of")]
    to_position: Option<i64>,
    /// Build as of this time, RFC 3339 (kept in `rebuild_<name>`, not swapped in).
    #[arg(long)]
    as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Events read and applied per transaction.
    #[arg(long, default_value_t = projections::rebuild::BATCH,
          value_parser = clap::value_parser!(i64).range(1..))]
    batch_size: i64,
    /// Events of history after which an order with no new event is written out and
    /// forgotten by the replay: bounds its memory (with the default, a rebuild of
    /// 10 million events peaked at 315 MiB).
    #[arg(long, default_value_t = projections::rebuild::WINDOW,
          value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    #[command(flatten)]
    database: DatabaseArgs,
}

pub async fn run(args: RebuildArgs) -> anyhow::Result<()> {
    let target = match (args.to_position, args.as_of) {
        (Some(position), _) => Target::Cut(Cut::Position(position)),
        (None, Some(time)) => Target::Cut(Cut::Time(time.with_timezone(&chrono::Utc))),
        (None, None) => Target::Live,
    };
    let pool = args.database.pool()?;
    migrations::migrate(&pool).await.context("applying migrations")?;
    let kinds: Vec<ProjectionKind> = match ProjectionKind::parse(&args.projection) {
        Some(kind) => vec![kind],
        None => ProjectionKind::ALL.to_vec(),
    };
    for kind in kinds {
        let name = kind.name();
        let settings = rebuild::Settings { batch: args.batch_size, window: args.window };
        let running = rebuild::start_with(&pool, kind, target, settings);
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix:>13} [{bar:40}] {pos}/{len} events  {msg}")?
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_owned());
        let mut task = running.task;
        let mut changes = running.progress.subscribe();
        let outcome = loop {
            tokio::select! {
                finished = &mut task => break finished?,
                _ = tokio::signal::ctrl_c() => {
                    bar.set_message("cancelling…");
                    running.cancel.cancel();
                }
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The rebuild dropped its progress: it is ending; wait for it.
                        break (&mut task).await?;
                    }
                }
            }
            let status = changes.borrow_and_update().clone();
            bar.set_length(status.total);
            bar.set_position(status.replayed);
            let eta = status.eta_seconds.map_or_else(String::new, |s| format!("ETA {s:.0} s"));
            bar.set_message(format!("{:.0}/s  {eta}  {}", status.events_per_second, status.state));
        };
        match outcome {
            Ok(status) => {
                bar.set_position(status.replayed);
                bar.finish_with_message(format!(
                    "{:.0}/s  {}",
                    status.events_per_second,
                    match target {
                        Target::Live => "swapped in as the live generation".to_owned(),
                        Target::Cut(_) => format!("kept in schema {}", status.schema),
                    }
                ));
            }
            Err(error) => {
                bar.abandon_with_message(error.to_string());
                anyhow::bail!("rebuilding {name}: {error}");
            }
        }
    }
    Ok(())
}
