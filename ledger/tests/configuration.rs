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
fn an_unknown_bus_or_a_bus_url_that_does_not_parse_is_refused() -> std::io::Result<()> {
    let tokens = ("LEDGER_API_TOKENS", "write:abcdefgh");
    let output = ledger(&["serve"], &[tokens, ("LEDGER_BUS", "carrier-pigeon")])?;
    assert!(refused_naming(&output, "--bus"), "{output:?}");
    let nats = [tokens, ("LEDGER_BUS", "nats"), ("LEDGER_NATS_URL", "nats://host:port:what")];
    assert!(refused_naming(&ledger(&["serve"], &nats)?, "LEDGER_NATS_URL"));
    let rabbit = [tokens, ("LEDGER_BUS", "rabbitmq"), ("LEDGER_RABBITMQ_URL", "http://x")];
    assert!(refused_naming(&ledger(&["serve"], &rabbit)?, "LEDGER_RABBITMQ_URL"));
    let insync =
        [tokens, ("LEDGER_TOPIC_REPLICATION", "2"), ("LEDGER_TOPIC_MIN_INSYNC_REPLICAS", "3")];
    assert!(refused_naming(&ledger(&["serve"], &insync)?, "LEDGER_TOPIC_MIN_INSYNC_REPLICAS"));
    let retention = [tokens, ("LEDGER_TOPIC_RETENTION", "a while")];
    assert!(refused_naming(&ledger(&["serve"], &retention)?, "--topic-retention"));
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

#[test]
fn bad_delivery_settings_are_refused_naming_the_setting() -> std::io::Result<()> {
    let tokens = ("LEDGER_API_TOKENS", "write:abcdefgh");
    let smtp = ("LEDGER_SMTP_URL", "smtp://127.0.0.1:2525");
    let from = ("LEDGER_MAIL_FROM", "Orders <orders@shop.example>");
    let hook = ("LEDGER_WEBHOOK_URL", "http://127.0.0.1:9/hooks");
    let secret = ("LEDGER_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    for (env, setting) in [
        (vec![tokens, ("LEDGER_SMTP_URL", "not a url"), from], "LEDGER_SMTP_URL"),
        (vec![tokens, ("LEDGER_SMTP_URL", "http://mail.example"), from], "LEDGER_SMTP_URL"),
        (vec![tokens, smtp], "LEDGER_MAIL_FROM"),
        (vec![tokens, smtp, ("LEDGER_MAIL_FROM", "orders at shop")], "LEDGER_MAIL_FROM"),
        (vec![tokens, hook], "LEDGER_WEBHOOK_SECRET"),
        (vec![tokens, hook, ("LEDGER_WEBHOOK_SECRET", "s3cr3t")], "LEDGER_WEBHOOK_SECRET"),
        (vec![tokens, hook, ("LEDGER_WEBHOOK_SECRET", "whsec_c2hvcnQ=")], "LEDGER_WEBHOOK_SECRET"),
        (vec![tokens, ("LEDGER_WEBHOOK_URL", "ftp://x/y"), secret], "LEDGER_WEBHOOK_URL"),
        (vec![tokens, ("LEDGER_ROLES", "api,dispatcher")], "LEDGER_ROLES"),
    ] {
        let output = ledger(&["serve"], &env)?;
        assert!(refused_naming(&output, setting), "{env:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("MfKQ9r8GKYqrTwjUPD8"), "a secret in the message: {stderr}");
    }
    Ok(())
}

#[test]
fn an_otlp_endpoint_that_is_not_an_http_url_is_refused() -> std::io::Result<()> {
    let tokens = ("LEDGER_API_TOKENS", "write:abcdefgh");
    for endpoint in ["collector:4318", "grpc://collector:4317", "http://"] {
        let output = ledger(&["serve"], &[tokens, ("LEDGER_OTLP_ENDPOINT", endpoint)])?;
        assert!(refused_naming(&output, "--otlp-endpoint"), "{endpoint}: {output:?}");
    }
    Ok(())
}
