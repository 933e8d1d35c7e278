//! A scrape of `/metrics` in the Prometheus text format, read for the names and labels.

use std::collections::{BTreeMap, BTreeSet};

/// A scrape of `/metrics`: every name in it (a sample's, or a `# TYPE` family's, whose
/// histogram samples end in `_bucket`, `_sum` and `_count`) with the label names its
/// samples carry.
#[derive(Debug, Default)]
pub(super) struct Exposition {
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    pub(super) fn parse(text: &str) -> anyhow::Result<Self> {
        let mut exposition = Self::default();
        let mut families = BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (family, kind) = declared
                    .split_once(' ')
                    .ok_or_else(|| anyhow::anyhow!("a TYPE line without a type: {line}"))?;
                families.insert(family.to_owned(), kind.to_owned());
                exposition.labels.entry(family.to_owned()).or_default();
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, labels) = parse_sample(line)?;
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| {
                    families.get(*family).is_some_and(|k| k == "histogram" || k == "summary")
                })
                .unwrap_or(name.as_str())
                .to_owned();
            for series in [&name, &family] {
                exposition.labels.entry(series.clone()).or_default().extend(labels.keys().cloned());
            }
        }
        Ok(exposition)
    }

    /// The label names a metric (a sample name or a family) carries; `None` if not exposed.
    pub(super) fn labels_of(&self, metric: &str) -> Option<&BTreeSet<String>> {
        self.labels.get(metric)
    }
}

/// `name{label="value",…} value [timestamp]`, label values with `\"`, `\\`, `\n` escapes.
fn parse_sample(line: &str) -> anyhow::Result<(String, BTreeMap<String, String>)> {
    let bad = || anyhow::anyhow!("not a sample line: {line}");
    let name_end = line.find(['{', ' ']).ok_or_else(bad)?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inside) = rest.strip_prefix('{') {
        let mut chars = inside.char_indices().peekable();
        let mut end = None;
        while let Some((at, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(at);
                    break;
                }
                ',' | ' ' => {}
                _ => {
                    let mut label = String::from(c);
                    while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                        label.push(c);
                    }
                    chars.next(); // '='
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err(bad());
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('"') => break,
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(escaped) => value.push(escaped),
                                None => return Err(bad()),
                            },
                            Some(c) => value.push(c),
                            None => return Err(bad()),
                        }
                    }
                    labels.insert(label.trim().to_owned(), value);
                }
            }
        }
        rest = &inside[end.ok_or_else(bad)? + 1..];
    }
    let value = rest.split_whitespace().next().ok_or_else(bad)?;
    if !matches!(value, "+Inf" | "-Inf" | "NaN") {
        value.parse::<f64>().map_err(|_| bad())?;
    }
    Ok((name, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_is_read_with_histogram_samples_under_their_family() -> anyhow::Result<()> {
        let text = "# HELP h Latency\n# TYPE h histogram\nh_bucket{route=\"/v1/{id}\",le=\"0.5\"} 3\nh_bucket{route=\"/v1/{id}\",le=\"+Inf\"} 4\nh_sum{route=\"/v1/{id}\"} 1.5\nh_count{route=\"/v1/{id}\"} 4\n# TYPE g gauge\ng{state=\"a \\\"quoted\\\" one, really\"} 1\nplain 2\n";
        let exposition = Exposition::parse(text)?;
        assert_eq!(exposition.labels_of("h").map(|l| l.len()), Some(2), "route and le");
        assert!(exposition.labels_of("h_count").is_some_and(|l| l.contains("route")));
        assert!(exposition.labels_of("g").is_some_and(|l| l.contains("state")));
        assert_eq!(exposition.labels_of("g").map(|l| l.len()), Some(1), "a value's comma");
        assert_eq!(exposition.labels_of("plain").map(BTreeSet::len), Some(0));
        let (_, labels) = parse_sample(r#"g{state="a \"quoted\" one, really",x="\\"} +Inf"#)?;
        assert_eq!(labels["state"], "a \"quoted\" one, really");
        assert_eq!(labels["x"], "\\");
        assert!(parse_sample("g{state=\"open} 1").is_err());
        assert!(parse_sample("g 1x").is_err());
        assert!(exposition.labels_of("missing").is_none());
        Ok(())
    }
}
