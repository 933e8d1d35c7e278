//! Ctrl-C during a bench: the first stops the load, skips the phases not yet run and
//! still prints the report of what was measured; a second exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first Ctrl-C: the load stops, the phases not yet run are skipped, and the
/// report of what was measured is still printed. A second Ctrl-C exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

pub(crate) fn on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: stopping the load and skipping what is left (Ctrl-C again to quit)"
            );
            INTERRUPTED.store(true, Ordering::Relaxed);
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}
