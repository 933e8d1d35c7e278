//! The workspace's shape, checked: no module imports another that imports it back, no
//! source file grows past what one reads in a sitting without saying why, and the HTTP
//! adapter and the core crates stay free of the heavy clients that belong elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's crates, by folder.
const CRATES: &[&str] = &[
    "domain",
    "eventstore",
    "migrations",
    "commands",
    "trace-context",
    "bus",
    "bus-kafka",
    "bus-nats",
    "bus-rabbitmq",
    "contract",
    "projections",
    "delivery",
    "delivery-channels",
    "payment-service",
    "payment-provider",
    "payment-standin",
    "api",
    "console",
    "ledger",
    "bench",
    "tests",
];

/// Lines a source file may have before its header must say why it is longer.
const LONG_FILE: usize = 450;
/// What a long file's module documentation says, to be allowed.
const LONG_FILE_REASON: &str = "Long because";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    Ok(())
}

/// The module path of a file under `src` (`lib.rs` → "", `a/mod.rs` → "a", `a/b.rs` → "a::b").
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    Some(parts.join("::"))
}

/// Expands `use` trees into full paths: `crate::{a, b::{c, d}}` → `crate::a`, `crate::b::c`, …
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let base = if head.is_empty() { prefix.to_owned() } else { join(prefix, head) };
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        for (index, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&base, &inner[start..index], out);
                    start = index + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(join(prefix, path));
    }
}

fn join(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_owned()
    } else {
        format!("{prefix}::{path}")
    }
}

/// Every path a file names that starts with `crate`, `super` or `self`, or with one of its
/// own child modules, resolved to an absolute module path (without `crate`).
fn references(module: &str, source: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    // A file's unit tests come last, in a module of their own whose `super` is the file.
    let source = source.split("#[cfg(test)]").next().unwrap_or(source);
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    // `use` trees, which may span lines.
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
        let tail = &rest[at + 4..];
        let end = tail.find(';').unwrap_or(tail.len());
        if before_ok {
            expand("", &tail[..end], &mut paths);
        }
        rest = &tail[end.min(tail.len())..];
    }
    // Inline paths: `crate::a::b(…)`, `super::x`, `child::f()`.
    let bytes = code.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let starts_word = index == 0
            || !(bytes[index - 1].is_ascii_alphanumeric()
                || bytes[index - 1] == b'_'
                || bytes[index - 1] == b':');
        if starts_word && (bytes[index].is_ascii_alphabetic() || bytes[index] == b'_') {
            let end = code[index..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |n| index + n);
            let word = &code[index..end];
            if word.contains("::") {
                paths.push(word.trim_end_matches(':').to_owned());
            }
            index = end;
        } else {
            index += 1;
        }
    }
    let parent: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let mut segments: Vec<&str> = path.split("::").collect();
            let mut absolute: Vec<String> = match segments.first().copied() {
                Some("crate") => {
                    segments.remove(0);
                    Vec::new()
                }
                Some("super") => {
                    let mut base = parent.clone();
                    while segments.first() == Some(&"super") {
                        segments.remove(0);
                        base.pop();
                    }
                    base.into_iter().map(str::to_owned).collect()
                }
                Some("self") => {
                    segments.remove(0);
                    parent.iter().map(|p| (*p).to_owned()).collect()
                }
                Some(first) if children.contains(first) => {
                    parent.iter().map(|p| (*p).to_owned()).collect()
                }
                _ => return None,
            };
            absolute.extend(segments.into_iter().map(str::to_owned));
            Some(absolute)
        })
        .collect()
}

/// Module → the modules it refers to, for one crate.
fn module_graph(krate: &Path) -> std::io::Result<BTreeMap<String, BTreeSet<String>>> {
    let src = krate.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    let mut sources = BTreeMap::new();
    for file in &files {
        if let Some(module) = module_of(&src, file) {
            sources.insert(module, std::fs::read_to_string(file)?);
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    // Names re-exported at the crate root, resolved to the module defining them.
    let mut reexports: BTreeMap<String, String> = BTreeMap::new();
    if let Some(root) = sources.get("") {
        for path in references("", root, &BTreeSet::new()) {
            let (name, module) =
                (path.last().cloned(), path[..path.len().saturating_sub(1)].join("::"));
            if let Some(name) = name {
                if modules.contains(&module) {
                    reexports.insert(name, module);
                }
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, source) in &sources {
        let children: BTreeSet<String> = modules
            .iter()
            .filter_map(|m| m.strip_prefix(&join(module, "")).filter(|c| !c.contains("::")))
            .map(str::to_owned)
            .collect();
        let edges = graph.entry(module.clone()).or_default();
        for path in references(module, source, &children) {
            // The longest prefix that is a module; a root name goes to its definition.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|candidate| modules.contains(candidate))
                .or_else(|| path.first().and_then(|name| reexports.get(name).cloned()));
            if let Some(target) = target.filter(|t| t != module && !t.is_empty()) {
                edges.insert(target);
            }
        }
    }
    Ok(graph)
}

/// Pairs of modules that refer to each other, directly or through others.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in graph.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    found.push(cycle);
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

#[test]
fn no_module_imports_one_that_imports_it_back() -> std::io::Result<()> {
    let mut all = Vec::new();
    for krate in CRATES {
        let dir = workspace().join(krate);
        if dir.join("src").exists() {
            for cycle in cycles(&module_graph(&dir)?) {
                all.push(format!("{krate}: {}", cycle.join(" → ")));
            }
        }
    }
    assert!(all.is_empty(), "module cycles:\n{}", all.join("\n"));
    Ok(())
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(!cycles(&graph).is_empty());
    let refs =
        references("x", "use crate::{y::Z, w};\nfn f() { super::v::g(); }", &BTreeSet::new());
    assert!(refs.contains(&vec!["y".to_owned(), "Z".to_owned()]), "{refs:?}");
    assert!(refs.contains(&vec!["v".to_owned(), "g".to_owned()]), "{refs:?}");
}

/// Source files, that is: the specifications and benches are read one test at a time.
#[test]
fn long_source_files_say_why() -> std::io::Result<()> {
    let mut long = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        let src = workspace().join(krate).join("src");
        if src.exists() {
            rust_files(&src, &mut files)?;
        }
        for file in files {
            let source = std::fs::read_to_string(&file)?;
            let lines = source.lines().count();
            let explained = source
                .lines()
                .take_while(|line| line.starts_with("//!") || line.is_empty())
                .any(|line| line.contains(LONG_FILE_REASON));
            if lines > LONG_FILE && !explained {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split by concept, or say \"{LONG_FILE_REASON} …\" in the header: {long:?}"
    );
    Ok(())
}

/// The names of every package `package` depends on, normally (not for tests or builds).
fn dependencies_of(package: &str) -> std::io::Result<BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .current_dir(workspace())
        .args(["tree", "--offline", "--locked", "-e", "normal", "--prefix", "none", "-p", package])
        .output()?;
    assert!(output.status.success(), "cargo tree: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect())
}

#[test]
fn the_http_adapter_and_the_core_carry_no_broker_or_load_generator() -> std::io::Result<()> {
    let api = dependencies_of("api")?;
    for heavy in ["reqwest", "hdrhistogram", "rdkafka"] {
        assert!(!api.contains(heavy), "api depends on {heavy}");
    }
    for core in ["domain", "eventstore", "commands", "projections", "bus", "payment-service"] {
        assert!(!dependencies_of(core)?.contains("rdkafka"), "{core} builds librdkafka");
    }
    // The saga speaks to the provider through its trait; the HTTP client is the adapter's.
    assert!(
        !dependencies_of("payment-service")?.contains("reqwest"),
        "payment-service speaks HTTP"
    );
    // The stand-in is for tests and demos: the binary never links it.
    assert!(!dependencies_of("ledger")?.contains("payment-standin"), "ledger links the stand-in");
    let domain = dependencies_of("domain")?;
    for io in ["tokio", "tokio-postgres", "axum"] {
        assert!(!domain.contains(io), "the domain depends on {io}");
    }
    Ok(())
}
