//! `ledger`: the order ledger's one binary.

/// A replay decodes and drops millions of small values (rows, payload strings, events);
/// glibc's allocator spent about a tenth of a rebuild's CPU on them, consolidating and
/// unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger::cli::main()
}
