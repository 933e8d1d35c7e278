//! `ledger projections rebuild`: the rebuild with a progress bar (rate and ETA) on the
//! terminal; Ctrl-C cancels it, leaving the live generation as it was.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use eventstore::Cut;
use projections::rebuild::{self, Target, PROJECTIONS};

use crate::config::DatabaseArgs;

pub async fn run(
    database: &DatabaseArgs,
    which: &str,
    to_position: Option<i64>,
    as_of: Option<DateTime<Utc>>,
    batch_size: i64,
) -> anyhow::Result<()> {
    let target = match (to_position, as_of) {
        (Some(position), _) => Target::Cut(Cut::Position(position)),
        (None, Some(time)) => Target::Cut(Cut::Time(time)),
        (None, None) => Target::Live,
    };
    let pool = eventstore::connect(&database.pool_settings())?;
    eventstore::migrate(&pool).await.context("applying migrations")?;
    let names: Vec<&str> = if which == "all" { PROJECTIONS.to_vec() } else { vec![which] };
    for name in names {
        let running = rebuild::start_with_batch(&pool, name, target, batch_size)
            .with_context(|| format!("no projection called {name}"))?;
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix:>13} [{bar:40}] {pos}/{len} events  {msg}")?
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_owned());
        let mut task = running.task;
        let outcome = loop {
            tokio::select! {
                finished = &mut task => break finished?,
                _ = tokio::signal::ctrl_c() => {
                    bar.set_message("cancelling…");
                    let _ = running.cancel.send(true);
                }
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let status = running.progress.snapshot();
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
