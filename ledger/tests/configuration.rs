//! Bad configuration stops the `ledger` binary at start-up, with a message naming the
//! setting, before it touches anything. (These run the real binary, which is also why a
//! workspace `cargo test` always builds it for the end-to-end specs.)

use std::process::{Command, Output};

fn ledger(args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
    command.args(args);
    // The runner's own settings must not decide the outcome.
    for (name, _) in std::env::vars() {
        if name.starts_with("LEDGER_") || name == "DATABASE_URL" || name.starts_with("KAFKA_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output()
}

fn refused_naming(output: &Output, setting: &str) -> bool {
    let stderr = String::from_utf8_lossy(&output.stderr);
    !output.status.success() && stderr.contains(setting)
}

#[test]
fn serving_without_tokens_is_refused_unless_explicitly_open() -> std::io::Result<()> {
    let output = ledger(&["serve"], &[])?;
    assert!(refused_naming(&output, "LEDGER_API_TOKENS"), "{output:?}");
    Ok(())
}

#[test]
fn a_malformed_token_list_is_refused() -> std::io::Result<()> {
    let output = ledger(&["serve"], &[("LEDGER_API_TOKENS", "root:abcdefgh")])?;
    assert!(refused_naming(&output, "LEDGER_API_TOKENS"), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown role `root`"));
    Ok(())
}

#[test]
fn an_unparseable_database_url_is_refused() -> std::io::Result<()> {
    let output = ledger(&["migrate"], &[("DATABASE_URL", "postgres://x@y:notaport/z")])?;
    assert!(refused_naming(&output, "DATABASE_URL"), "{output:?}");
    Ok(())
}

#[test]
fn out_of_range_numbers_and_unknown_roles_are_refused() -> std::io::Result<()> {
    let tokens = ("LEDGER_API_TOKENS", "write:abcdefgh");
    let output = ledger(&["serve"], &[tokens, ("LEDGER_DB_POOL_SIZE", "0")])?;
    assert!(refused_naming(&output, "--db-pool-size"), "{output:?}");
    let output = ledger(&["serve"], &[tokens, ("LEDGER_ROLES", "api,cashier")])?;
    assert!(refused_naming(&output, "--roles"), "{output:?}");
    let output = ledger(&["serve"], &[tokens, ("LEDGER_INSECURE_NO_AUTH", "maybe")])?;
    assert!(refused_naming(&output, "--insecure-no-auth"), "{output:?}");
    Ok(())
}

#[test]
fn booleans_take_the_usual_spellings_from_the_environment() -> std::io::Result<()> {
    // `1` means "serve openly"; with tokens as well, that is a contradiction, refused.
    let output = ledger(
        &["serve"],
        &[("LEDGER_INSECURE_NO_AUTH", "1"), ("LEDGER_API_TOKENS", "write:abcdefgh")],
    )?;
    assert!(refused_naming(&output, "LEDGER_INSECURE_NO_AUTH"), "{output:?}");
    Ok(())
}
