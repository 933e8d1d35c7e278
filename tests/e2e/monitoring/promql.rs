//! PromQL read by a tokenizer, not a parser: it drops strings, numbers, durations and
//! ranges, Grafana's `$variables`, operators, keywords and function calls (a name followed
//! by `(`), and keeps the metric names, the label names of each selector's `{…}`, and the
//! label lists of `by`/`without` (which the aggregated metrics must carry) and of
//! `on`/`ignoring`/`group_left`/`group_right` (the enclosing expression's). That is all a
//! rename can break.

use std::collections::BTreeSet;

/// What a PromQL expression asks of the exposition.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PromQl {
    pub(super) metrics: BTreeSet<String>,
    pub(super) labels: Vec<LabelNeed>,
}

/// A label the expression names, and the metrics that must carry it: each of them
/// (a selector's matcher, `by`/`without`, `on`/`ignoring`) or one of them (`group_left`,
/// `group_right`, which copy it from the other side).
#[derive(Debug, PartialEq)]
pub(super) struct LabelNeed {
    pub(super) label: String,
    pub(super) metrics: BTreeSet<String>,
    pub(super) on_every: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Open,
    Close,
    /// A selector's `{…}`: the label names it matches on.
    Matchers(Vec<String>),
    /// `by`, `without`, `on`, `ignoring`, `group_left` or `group_right` and its label list.
    Grouping(String, Vec<String>),
}

/// Words that are never metric names where they stand alone.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

const GROUPINGS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

pub(super) fn read_promql(expr: &str) -> Result<PromQl, String> {
    let tokens = tokenize(expr)?;
    // The matching `)` of every `(`.
    let mut groups = Vec::new();
    let mut open = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        match token {
            Token::Open => open.push(at),
            Token::Close => groups.push((open.pop().ok_or("a `)` without its `(`")?, at)),
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err("a `(` without its `)`".to_owned());
    }
    let mut read = PromQl::default();
    let mut metric_at = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        let Token::Name(name) = token else { continue };
        // A call, or an aggregation with its grouping first (`sum by (x) (…)`); before
        // `on (…)` or `group_left (…)` stands an operand.
        let called = match tokens.get(at + 1) {
            Some(Token::Open) => true,
            Some(Token::Grouping(keyword, _)) => keyword == "by" || keyword == "without",
            _ => false,
        };
        if called || KEYWORDS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        read.metrics.insert(name.clone());
        metric_at.push((at, name.clone()));
        if let Some(Token::Matchers(labels)) = tokens.get(at + 1) {
            for label in labels {
                let metrics = BTreeSet::from([name.clone()]);
                read.labels.push(LabelNeed { label: label.clone(), metrics, on_every: true });
            }
        }
    }
    if tokens.iter().enumerate().any(|(at, token)| {
        matches!(token, Token::Matchers(_))
            && !matches!(tokens.get(at.wrapping_sub(1)), Some(Token::Name(_)))
    }) {
        return Err("a selector without a metric name".to_owned());
    }
    let within = |(from, to): (usize, usize)| -> BTreeSet<String> {
        metric_at.iter().filter(|(at, _)| *at > from && *at < to).map(|(_, m)| m.clone()).collect()
    };
    let enclosing = |at: usize| {
        groups
            .iter()
            .filter(|(from, to)| *from < at && at < *to)
            .min_by_key(|(from, to)| to - from)
            .copied()
            .unwrap_or((0, tokens.len()))
    };
    for (at, token) in tokens.iter().enumerate() {
        let Token::Grouping(keyword, labels) = token else { continue };
        let (scope, on_every) = match keyword.as_str() {
            // `sum (…) by (x)` or `sum by (x) (…)`: the aggregated expression.
            "by" | "without" => {
                let after = tokens.get(at.wrapping_sub(1)) == Some(&Token::Close);
                let group = groups.iter().copied().find(|(from, to)| {
                    if after {
                        *to + 1 == at
                    } else {
                        *from == at + 1
                    }
                });
                (group.ok_or(format!("`{keyword}` aggregates nothing"))?, true)
            }
            "on" | "ignoring" => (enclosing(at), true),
            _ => (enclosing(at), false),
        };
        let metrics = if scope.1 == tokens.len() {
            metric_at.iter().map(|(_, m)| m.clone()).collect()
        } else {
            within(scope)
        };
        for label in labels {
            read.labels.push(LabelNeed {
                label: label.clone(),
                metrics: metrics.clone(),
                on_every,
            });
        }
    }
    Ok(read)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let word = |from: usize| {
        let end = (from..chars.len()).find(|&i| !is_name_char(chars[i])).unwrap_or(chars.len());
        (chars[from..end].iter().collect::<String>(), end)
    };
    let skip_blank = |mut from: usize| {
        while chars.get(from).is_some_and(|c| c.is_whitespace()) {
            from += 1;
        }
        from
    };
    while at < chars.len() {
        let c = chars[at];
        match c {
            _ if c.is_whitespace() => at += 1,
            '#' => at = (at..chars.len()).find(|&i| chars[i] == '\n').unwrap_or(chars.len()),
            '"' | '\'' | '`' => at = skip_string(&chars, at)?,
            '[' => {
                let close = (at..chars.len()).find(|&i| chars[i] == ']');
                at = close.ok_or("a `[` without its `]`")? + 1;
            }
            '{' => {
                let (labels, end) = matchers(&chars, at)?;
                tokens.push(Token::Matchers(labels));
                at = end;
            }
            '(' => {
                tokens.push(Token::Open);
                at += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                at += 1;
            }
            '$' => {
                // A Grafana variable: `$name`, `${name}`, `${name:format}`.
                at = if chars.get(at + 1) == Some(&'{') {
                    (at..chars.len()).find(|&i| chars[i] == '}').ok_or("an unclosed `${`")? + 1
                } else {
                    word(at + 1).1
                };
            }
            _ if c.is_ascii_digit()
                || (c == '.' && chars.get(at + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // Numbers, hexadecimal, exponents and durations (`offset 5m`).
                at += 1;
                while let Some(&next) = chars.get(at) {
                    let exponent_sign =
                        matches!(next, '+' | '-') && matches!(chars[at - 1], 'e' | 'E');
                    if !(next.is_ascii_alphanumeric() || next == '.' || exponent_sign) {
                        break;
                    }
                    at += 1;
                }
            }
            _ if is_name_start(c) => {
                let (name, end) = word(at);
                let lowered = name.to_ascii_lowercase();
                let list_at = skip_blank(end);
                if GROUPINGS.contains(&lowered.as_str()) && chars.get(list_at) == Some(&'(') {
                    let close = (list_at..chars.len())
                        .find(|&i| chars[i] == ')')
                        .ok_or(format!("`{name}` without its `)`"))?;
                    let labels = chars[list_at + 1..close]
                        .iter()
                        .collect::<String>()
                        .split(',')
                        .map(str::trim)
                        .filter(|label| !label.is_empty())
                        .map(str::to_owned)
                        .collect();
                    tokens.push(Token::Grouping(lowered, labels));
                    at = close + 1;
                } else {
                    tokens.push(Token::Name(name));
                    at = end;
                }
            }
            // Operators, commas, `@`.
            _ => at += 1,
        }
    }
    Ok(tokens)
}

/// The index after the string that opens at `from` (backticks take no escapes).
fn skip_string(chars: &[char], from: usize) -> Result<usize, String> {
    let quote = chars[from];
    let mut at = from + 1;
    while let Some(&c) = chars.get(at) {
        if c == '\\' && quote != '`' {
            at += 2;
        } else if c == quote {
            return Ok(at + 1);
        } else {
            at += 1;
        }
    }
    Err("an unterminated string".to_owned())
}

/// The label names of the matchers in the `{…}` that opens at `from`, and the index after it.
fn matchers(chars: &[char], from: usize) -> Result<(Vec<String>, usize), String> {
    let mut labels = Vec::new();
    let mut at = from + 1;
    loop {
        match chars.get(at) {
            None => return Err("a `{` without its `}`".to_owned()),
            Some('}') => return Ok((labels, at + 1)),
            Some('"' | '\'' | '`') => at = skip_string(chars, at)?,
            Some(&c) if is_name_start(c) => {
                let end =
                    (at..chars.len()).find(|&i| !is_name_char(chars[i])).unwrap_or(chars.len());
                labels.push(chars[at..end].iter().collect());
                at = end;
            }
            Some(_) => at += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(expr: &str) -> Vec<String> {
        read_promql(expr).map(|read| read.metrics.into_iter().collect()).unwrap_or_default()
    }

    fn needs(expr: &str) -> Vec<(String, Vec<String>, bool)> {
        read_promql(expr)
            .map(|read| read.labels)
            .unwrap_or_default()
            .into_iter()
            .map(|need| (need.label, need.metrics.into_iter().collect(), need.on_every))
            .collect()
    }

    fn owned(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn names_are_kept_and_functions_keywords_numbers_strings_and_ranges_dropped() {
        assert_eq!(metrics(r#"up{job="ledger"} == 0"#), owned(&["up"]));
        assert_eq!(
            metrics(
                r#"histogram_quantile(0.99, sum by (le, route) (rate(ledger_http_request_duration_seconds_bucket{route=~"/v1/{id}", status!="200"}[5m])))"#
            ),
            owned(&["ledger_http_request_duration_seconds_bucket"])
        );
        assert_eq!(
            metrics("time() - max(ledger_relay_last_publish_timestamp_seconds offset 1h) > 1e3"),
            owned(&["ledger_relay_last_publish_timestamp_seconds"])
        );
        assert_eq!(
            metrics("a_total and on (instance) b == bool 1 or c unless d_total"),
            owned(&["a_total", "b", "c", "d_total"])
        );
        assert_eq!(
            metrics(r#"max_over_time(x[10m:1m]) / ignoring(state) group_left(bus) y{z="a,b}"}"#),
            owned(&["x", "y"])
        );
        assert_eq!(
            metrics(r#"sum(rate(x_total{job=~"$job"}[$__rate_interval])) by (route) * ${factor}"#),
            owned(&["x_total"])
        );
        assert_eq!(
            metrics("job:ledger_commands:rate5m # a recording rule"),
            owned(&["job:ledger_commands:rate5m"])
        );
    }

    #[test]
    fn labels_go_to_the_metrics_that_must_carry_them() {
        assert_eq!(
            needs(r#"sum by (route) (rate(a{status=~"5.."}[5m])) / sum by (route) (rate(b[5m]))"#),
            vec![
                ("status".to_owned(), owned(&["a"]), true),
                ("route".to_owned(), owned(&["a"]), true),
                ("route".to_owned(), owned(&["b"]), true),
            ]
        );
        // The list after the aggregated expression belongs to it too.
        assert_eq!(
            needs("max(a) without (instance) > 1 and b"),
            vec![("instance".to_owned(), owned(&["a"]), true)]
        );
        // An operand before `on (…)` is a metric, not a call.
        assert_eq!(metrics("a / on (x) b"), owned(&["a", "b"]));
        // `on` binds both sides of its operation; `group_left` copies from one of them.
        assert_eq!(
            needs("c + (a == 0 and on (projection) group_left (bus) b)"),
            vec![
                ("projection".to_owned(), owned(&["a", "b"]), true),
                ("bus".to_owned(), owned(&["a", "b"]), false),
            ]
        );
    }

    #[test]
    fn what_it_cannot_read_is_an_error_not_a_guess() {
        for broken in ["sum(a", "a)", r#"a{b="c}"#, "a[5m", r#"{__name__="a"}"#, "by (x) + a"] {
            assert!(read_promql(broken).is_err(), "{broken}");
        }
    }
}
