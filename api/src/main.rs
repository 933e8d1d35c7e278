//! `ledger`: the order ledger's one binary.

fn main() -> anyhow::Result<()> {
    api::cli::main()
}
