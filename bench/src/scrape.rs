//! Reading the ledger's `/metrics` (Prometheus text format) before and after the load, to
//! turn its counters into rates the client cannot see: events the relay published per
//! second, events each projection applied per second, and the server's own view of
//! command latency.
//!
//! Parsed here rather than with `prometheus-parse`: that crate drops every sample whose
//! label value holds a `}`, and the ledger's HTTP metrics are labelled with route
//! templates such as `/v1/orders/{id}/payments` (the test below keeps such a line).

use std::time::Instant;

/// One sample of the exposition: `name{label="value",…} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A scrape and when it was taken.
#[derive(Clone, Debug)]
pub struct Scrape {
    pub at: Instant,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(at: Instant, text: &str) -> Scrape {
        Scrape { at, samples: text.lines().filter_map(parse_line).collect() }
    }

    /// The sum of every series of `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for sample in self.samples.iter().filter(|sample| sample.name == name) {
            if labels.iter().all(|(key, value)| sample.label(key) == Some(*value)) {
                *found.get_or_insert(0.0) += sample.value;
            }
        }
        found
    }

    /// The distinct values of `label` among the series of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter_map(|sample| sample.label(label).map(str::to_owned))
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

/// How much a counter grew between two scrapes, and its rate per second.
pub fn rate(
    before: &Scrape,
    after: &Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<(f64, f64)> {
    let start = before.value(name, labels).unwrap_or(0.0);
    let end = after.value(name, labels)?;
    let seconds = after.at.saturating_duration_since(before.at).as_secs_f64();
    let delta = (end - start).max(0.0);
    Some((delta, if seconds > 0.0 { delta / seconds } else { 0.0 }))
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find(['{', ' ']) {
        Some(open) if line[open..].starts_with('{') => {
            let (labels, consumed) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, &line[open + 1 + consumed..])
        }
        Some(space) => (&line[..space], Vec::new(), &line[space..]),
        None => return None,
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// Parses `key="value",…}` and returns the labels and the bytes consumed (through `}`).
fn parse_labels(text: &str) -> Option<(Vec<(String, String)>, usize)> {
    let mut labels = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| *c == ',' || c.is_whitespace()).is_some() {}
        let (start, first) = chars.next()?;
        if first == '}' {
            return Some((labels, start + 1));
        }
        let mut key = String::from(first);
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()?.1 {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TEXT: &str = r#"# HELP ledger_relay_events_published_total Events this process's relay published
# TYPE ledger_relay_events_published_total counter
ledger_relay_events_published_total 1200
ledger_projection_events_applied_total{projection="payments"} 1000
ledger_projection_events_applied_total{projection="notifications"} 990
ledger_http_requests_total{method="POST",route="/v1/orders/{id}/payments",status="201"} 7
weird{a="x\"y,z}",b="2"} 3.5 1700000000
ledger_command_duration_seconds_bucket{command="place",outcome="accepted",le="+Inf"} 12
"#;

    #[test]
    fn parses_names_labels_and_values() {
        let scrape = Scrape::parse(Instant::now(), TEXT);
        assert_eq!(scrape.value("ledger_relay_events_published_total", &[]), Some(1200.0));
        assert_eq!(
            scrape.value("ledger_projection_events_applied_total", &[("projection", "payments")]),
            Some(1000.0)
        );
        assert_eq!(scrape.value("ledger_projection_events_applied_total", &[]), Some(1990.0));
        assert_eq!(scrape.value("weird", &[("a", "x\"y,z}"), ("b", "2")]), Some(3.5));
        let route = ("route", "/v1/orders/{id}/payments");
        assert_eq!(scrape.value("ledger_http_requests_total", &[route]), Some(7.0));
        assert_eq!(scrape.value("absent", &[]), None);
        assert_eq!(
            scrape.label_values("ledger_projection_events_applied_total", "projection"),
            ["notifications", "payments"]
        );
    }

    #[test]
    fn rates_divide_the_growth_by_the_time_between_scrapes() {
        let start = Instant::now();
        let before = Scrape::parse(start, "c 100\n");
        let after = Scrape::parse(start + Duration::from_secs(4), "c 500\n");
        assert_eq!(rate(&before, &after, "c", &[]), Some((400.0, 100.0)));
        assert_eq!(rate(&before, &after, "missing", &[]), None);
    }
}
