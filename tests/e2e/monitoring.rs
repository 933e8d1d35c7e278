//! What ships for watching the ledger asks only for what a running ledger exposes. Every
//! metric that the alert rules (`deploy/prometheus/ledger-alerts.yml`) and the Grafana
//! dashboard (`deploy/grafana/ledger-dashboard.json`) query is found in `/metrics` of a
//! ledger that ran a little traffic, with every label they match or group by. An alert on
//! a series that does not exist never fires and says nothing; a renamed metric or label
//! fails here instead. What the rules decide is `promtool test rules`' part
//! (`deploy/prometheus/ledger-alerts.test.yml`, which `scripts/test` runs).
//!
//! PromQL is read by a tokenizer ([`promql`]), a scrape by [`exposition`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ledger::bus_choice::BusKind;
use ledger::Role;
use ledger_tests::{expect_json, expect_status, poll_until, TestApp};
use serde_json::Value;
use uuid::Uuid;

mod exposition;
mod promql;

use exposition::Exposition;
use promql::read_promql;

const ALERTS: &str = "deploy/prometheus/ledger-alerts.yml";
const DASHBOARD: &str = "deploy/grafana/ledger-dashboard.json";

/// Series Prometheus makes itself, not the ledger.
const PROMETHEUS_OWN: &[&str] = &["up"];
/// Labels Prometheus attaches to every series of a target when it scrapes it.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// The severities the README's alert table explains.
const SEVERITIES: &[&str] = &["page", "ticket"];

/// Room for the relay and both projections to catch up on a loaded machine.
const CAUGHT_UP: Duration = Duration::from_secs(60);

fn repository_file(path: &str) -> anyhow::Result<String> {
    let file: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))
}

#[tokio::test]
async fn the_alerts_and_the_dashboard_query_only_metrics_and_labels_the_ledger_exposes(
) -> anyhow::Result<()> {
    let queries = shipped_queries()?;
    let app = TestApp::spawn_with(|settings| {
        settings.roles = Role::ALL.to_vec();
        settings.bus.kind = BusKind::Nats;
        // A command held past the time limit is cut off (the timeouts counter); another
        // request on its token meanwhile is refused (the throttled counter).
        settings.access.request_timeout = Duration::from_secs(3);
        settings.access.max_in_flight_per_token = 1;
    })
    .await?;
    drive_traffic(&app).await?;
    let exposition = until_caught_up(&app).await?;

    let mut missing = Vec::new();
    for query in &queries {
        let read = read_promql(&query.expr)
            .map_err(|error| anyhow::anyhow!("{}: {error}: {}", query.origin, query.expr))?;
        assert!(!read.metrics.is_empty(), "{} names no metric: {}", query.origin, query.expr);
        for metric in read.metrics.iter().filter(|m| !PROMETHEUS_OWN.contains(&m.as_str())) {
            if exposition.labels_of(metric).is_none() {
                missing.push(format!("{}: metric {metric}", query.origin));
            }
        }
        for need in read.labels.iter().filter(|n| !TARGET_LABELS.contains(&n.label.as_str())) {
            let metrics: Vec<&String> =
                need.metrics.iter().filter(|m| !PROMETHEUS_OWN.contains(&m.as_str())).collect();
            let carried = |metric: &&String| {
                exposition.labels_of(metric).is_some_and(|labels| labels.contains(&need.label))
            };
            let found = if need.on_every {
                metrics.iter().all(carried)
            } else {
                metrics.iter().any(carried)
            };
            if !found && !metrics.is_empty() {
                missing.push(format!("{}: label {} on {metrics:?}", query.origin, need.label));
            }
        }
    }
    assert!(missing.is_empty(), "not in /metrics:\n{}", missing.join("\n"));
    Ok(())
}

/// What an operator is told about each alert: its severity is one the README explains,
/// its runbook is the README's alert table, and that table has a row for it.
#[test]
fn every_alert_has_a_severity_and_a_row_in_the_readme_runbook() -> anyhow::Result<()> {
    let rules = alert_rules(&repository_file(ALERTS)?)?;
    let readme = repository_file("README.md")?;
    assert!(readme.lines().any(|line| line == "### Alerts"), "the README's alert section");
    assert!(rules.len() >= 8, "the failure modes that matter: {rules:?}");
    for rule in &rules {
        assert!(SEVERITIES.contains(&rule.severity.as_str()), "{}: {}", rule.name, rule.severity);
        assert_eq!(rule.runbook, "README.md#alerts", "{}", rule.name);
        let row = format!("| `{}` |", rule.name);
        assert!(readme.lines().any(|line| line.starts_with(&row)), "README row for {}", rule.name);
    }
    Ok(())
}

/// Every panel queries through the dashboard's data source variable, so the dashboard
/// imports into any Grafana; ids are unique, as Grafana needs them.
#[test]
fn the_dashboard_asks_its_datasource_variable_and_has_unique_panel_ids() -> anyhow::Result<()> {
    let dashboard: Value = serde_json::from_str(&repository_file(DASHBOARD)?)?;
    let variables = dashboard["templating"]["list"].as_array().cloned().unwrap_or_default();
    assert!(variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let id = panel["id"].as_i64().unwrap_or_default();
        assert!(ids.insert(id), "panel id {id} twice");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        }
    }
    Ok(())
}

/// Enough traffic that every series the rules and the dashboard query exists: commands
/// accepted and refused, a request the API cannot parse, one cut off by the time limit and
/// one refused for its token's in-flight limit, events for the relay and both projections.
async fn drive_traffic(app: &TestApp) -> anyhow::Result<()> {
    let order_id = app.place_order("cus_monitoring").await?;
    expect_status(app.capture(order_id, "pay_1", 3000).await?, 201).await?;
    // Refused by the domain (overpaying), so the command histogram has an error outcome.
    expect_status(app.capture(order_id, "pay_2", 1).await?, 409).await?;
    // Refused at the edge: not a command at all.
    let malformed = app.post("/v1/orders").body("{").header("content-type", "application/json");
    let status = malformed.send().await?.status().as_u16();
    assert!((400..500).contains(&status), "a malformed body: {status}");

    // A command stuck behind a lock on the events table holds its token's only slot until
    // the time limit cuts it off (503); another request on that token meanwhile is
    // refused at once (429).
    let mut blocker = app.database.client().await?;
    let lock = blocker.transaction().await?;
    lock.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE").await?;
    let body = TestApp::order_body(Uuid::now_v7(), "cus_monitoring_held");
    let held = tokio::spawn(app.post("/v1/orders").json(&body).send());
    app.database.until_a_session_waits_on_a_lock().await?;
    poll_until(Duration::from_secs(2), "a request on the held token refused", || async {
        Ok((app.get("/v1/payments?limit=1").send().await?.status() == 429).then_some(()))
    })
    .await?;
    expect_status(held.await??, 503).await?;
    lock.rollback().await?;
    Ok(())
}

/// Waits until the relay has published everything and both projections have applied it,
/// fed by the bus, then scrapes. The wait asks this app's admin API, not `/metrics`: the
/// recorder is shared by every app of the test process, so a gauge may be another test's.
async fn until_caught_up(app: &TestApp) -> anyhow::Result<Exposition> {
    poll_until(CAUGHT_UP, "the relay and both projections to catch up", || async {
        let relay = app.relay_status().await?;
        let published = relay["store"]["backlog"] == 0 && relay["process"]["broker"] == "reachable";
        let status = expect_json(app.get("/v1/admin/projections").send().await?, 200).await?;
        let current = ["payments", "notifications"].into_iter().all(|projection| {
            let report = of(&status["projections"], projection);
            let worker = of(&status["workers"], projection);
            report["lag_events"] == 0
                && report["unapplied_below_highest"] == 0
                && report["watermark_age_seconds"].as_f64().is_some_and(|age| age < 5.0)
                && worker["state"] == "running"
                && worker["lag_messages"].is_i64()
        });
        Ok((published && current).then_some(()))
    })
    .await?;
    let response = reqwest::Client::new().get(app.url("/metrics")).send().await?;
    Exposition::parse(&expect_status(response, 200).await?)
}

/// The item of a status list that is about `projection`.
fn of<'a>(list: &'a Value, projection: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|item| item["projection"] == projection))
        .unwrap_or(&Value::Null)
}

/// A PromQL expression the deployment files hold, and where.
#[derive(Debug)]
struct ShippedQuery {
    origin: String,
    expr: String,
}

fn shipped_queries() -> anyhow::Result<Vec<ShippedQuery>> {
    let mut queries: Vec<ShippedQuery> = alert_rules(&repository_file(ALERTS)?)?
        .into_iter()
        .map(|rule| ShippedQuery { origin: format!("{ALERTS}: {}", rule.name), expr: rule.expr })
        .collect();
    let alerts = queries.len();
    let dashboard: Value = serde_json::from_str(&repository_file(DASHBOARD)?)?;
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let origin = format!("{DASHBOARD}: {} {}", panel["title"], target["refId"]);
                queries.push(ShippedQuery { origin, expr: expr.to_owned() });
            }
        }
    }
    // A variable's `label_values(selector, label)` is the selector with `by (label)`.
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let query = variable["query"]["query"].as_str().or_else(|| variable["query"].as_str());
        let Some(query) = query.filter(|_| variable["type"] == "query") else { continue };
        let inner = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| anyhow::anyhow!("variable {}: not label_values", variable["name"]))?;
        let (selector, label) = inner
            .rsplit_once(',')
            .ok_or_else(|| anyhow::anyhow!("variable {}: {query}", variable["name"]))?;
        let origin = format!("{DASHBOARD}: variable {}", variable["name"]);
        let expr = format!("count by ({}) ({})", label.trim(), selector.trim());
        queries.push(ShippedQuery { origin, expr });
    }
    anyhow::ensure!(alerts >= 8, "{ALERTS}: {alerts} alerts read");
    anyhow::ensure!(queries.len() - alerts >= 20, "{DASHBOARD}: too few queries read");
    Ok(queries)
}

/// Every panel, those inside rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        found.push(panel);
        found.extend(panel["panels"].as_array().into_iter().flatten());
    }
    found
}

/// One alert rule, as far as these specs need it.
#[derive(Debug, Default)]
struct AlertRule {
    name: String,
    expr: String,
    severity: String,
    runbook: String,
}

/// The alert rules of a rules file. A line reader for this file's own shape (the tests
/// have no YAML parser): `- alert: Name`, then its keys, `expr:` holding the expression on
/// its line or in a `|` block indented below it; quoted expressions are refused rather
/// than half read.
fn alert_rules(yaml: &str) -> anyhow::Result<Vec<AlertRule>> {
    let mut rules: Vec<AlertRule> = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            rules.push(AlertRule { name: name.trim().to_owned(), ..AlertRule::default() });
            continue;
        }
        let Some(rule) = rules.last_mut() else { continue };
        let (key, value) = match trimmed.split_once(':') {
            Some((key, value)) => (key, value.trim()),
            None => continue,
        };
        match key {
            "expr" if value.starts_with(['|', '>']) => {
                let indent = line.len() - trimmed.len();
                let mut block = Vec::new();
                while let Some(next) = lines.peek() {
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    lines.next();
                }
                rule.expr = block.join("\n").trim().to_owned();
            }
            "expr" if value.starts_with(['"', '\'']) => {
                anyhow::bail!("{}: write the expression plain or as a `|` block", rule.name)
            }
            "expr" => rule.expr = value.to_owned(),
            "severity" => rule.severity = value.to_owned(),
            "runbook" => rule.runbook = value.trim_matches('"').to_owned(),
            _ => {}
        }
    }
    if let Some(rule) = rules.iter().find(|rule| rule.expr.is_empty()) {
        anyhow::bail!("alert {} has no expression", rule.name);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_rules_are_read_with_inline_and_block_expressions() -> anyhow::Result<()> {
        let yaml = "groups:\n  - name: g\n    rules:\n      - alert: One\n        expr: up == 0\n        for: 1m\n        labels:\n          severity: page\n      - alert: Two\n        expr: |\n          a\n          and\n          b\n        for: 5m\n        annotations:\n          runbook: \"README.md#alerts\"\n";
        let rules = alert_rules(yaml)?;
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[0].name.as_str(), rules[0].expr.as_str()), ("One", "up == 0"));
        assert_eq!(rules[0].severity, "page");
        assert_eq!((rules[1].name.as_str(), rules[1].expr.as_str()), ("Two", "a\nand\nb"));
        assert_eq!(rules[1].runbook, "README.md#alerts");
        assert!(alert_rules("      - alert: Three\n        expr: \"up\"\n").is_err());
        Ok(())
    }
}
