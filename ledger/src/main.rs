//! `ledger`: the order ledger's one binary.

/// A replay decodes and drops millions of small values (rows, payload strings, events),
/// where glibc's allocator spends a noticeable share of a rebuild's CPU consolidating and
/// unlinking chunks (docs/performance.md has the measurement). The one allocator of the
/// ledger, in the one binary the end-to-end specs run too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger::cli::main()
}
