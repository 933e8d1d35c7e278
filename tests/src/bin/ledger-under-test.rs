//! The `ledger` binary, built into this package so the end-to-end tests can start it as a
//! real process (`CARGO_BIN_EXE_ledger-under-test`) and kill it with SIGKILL.

fn main() -> anyhow::Result<()> {
    api::cli::main()
}
