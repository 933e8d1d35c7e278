//! The compatibility gate: the fixtures it must reject and pass, and the committed event
//! schemas against what the code generates now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use contract::compat::{breaking_changes, Breaking, Change};
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The `<case>.old.json` / `<case>.new.json` pairs in `dir`, by case.
fn pairs(dir: &str) -> Result<BTreeMap<String, (Value, Value)>, Box<dyn std::error::Error>> {
    let dir = root().join("tests/fixtures").join(dir);
    let mut pairs = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(case) = name.strip_suffix(".old.json") {
            let old = read(&dir.join(&name))?;
            let new = read(&dir.join(format!("{case}.new.json")))?;
            pairs.insert(case.to_owned(), (old, new));
        }
    }
    Ok(pairs)
}

#[test]
fn the_gate_rejects_every_breaking_fixture() -> TestResult {
    let pairs = pairs("breaking")?;
    assert!(pairs.len() >= 3, "breaking fixtures: {:?}", pairs.keys());
    for (case, (old, new)) in &pairs {
        assert!(!breaking_changes(old, new).is_empty(), "{case} must be rejected");
    }
    Ok(())
}

#[test]
fn the_gate_passes_every_additive_fixture() -> TestResult {
    let pairs = pairs("additive")?;
    assert!(!pairs.is_empty());
    for (case, (old, new)) in &pairs {
        let found = breaking_changes(old, new);
        assert!(found.is_empty(), "{case} must pass: {found:?}");
    }
    Ok(())
}

#[test]
fn the_gate_names_each_change_where_a_consumer_meets_it() -> TestResult {
    let pairs = pairs("breaking")?;
    let found = |case: &str| -> Vec<Breaking> {
        pairs.get(case).map(|(old, new)| breaking_changes(old, new)).unwrap_or_default()
    };
    let change =
        |case: &str| -> Vec<Change> { found(case).into_iter().map(|b| b.change).collect() };
    assert_eq!(change("field_removed"), [Change::PropertyRemoved("method".to_owned())]);
    assert!(change("field_renamed").contains(&Change::PropertyRemoved("method".to_owned())));
    assert_eq!(found("type_changed_in_def")[0].path, "/amount/amount_minor");
    assert!(matches!(change("type_changed_in_def")[0], Change::TypeChanged { .. }));
    assert_eq!(
        change("enum_narrowed"),
        [Change::EnumNarrowed { removed: vec![json!("sepa_debit")] }]
    );
    assert_eq!(change("optional_made_required"), [Change::BecameRequired("note".to_owned())]);
    assert_eq!(change("required_added"), [Change::RequiredAdded("captured_by".to_owned())]);
    assert!(
        matches!(&change("max_length_tightened")[0], Change::Tightened { keyword, .. } if keyword == "maxLength")
    );
    assert!(matches!(change("pattern_tightened")[0], Change::PatternChanged { .. }));
    assert!(matches!(change("alternative_removed")[0], Change::AlternativeRemoved { .. }));
    Ok(())
}

#[test]
fn recursive_definitions_end() {
    let tree = json!({
        "$ref": "#/$defs/Node",
        "$defs": { "Node": { "type": "object", "properties": {
            "children": { "type": "array", "items": { "$ref": "#/$defs/Node" } }
        } } }
    });
    assert!(breaking_changes(&tree, &tree).is_empty());
    let mut narrower = tree.clone();
    narrower["$defs"]["Node"]["properties"]["children"]["maxItems"] = json!(2);
    assert_eq!(breaking_changes(&tree, &narrower).len(), 1);
}

/// A published version's schema may only change compatibly, and never disappear: every
/// committed file under `schemas/events/` against what the code generates now for the
/// same type and version (and the envelope and headers against theirs).
#[test]
fn committed_schemas_stay_compatible() -> TestResult {
    let generated: BTreeMap<String, Value> =
        contract::event_schemas().into_iter().map(|e| (e.path(), e.schema)).collect();
    let dir = root().join("schemas/events");
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let path = format!("events/{name}");
        let committed = read(&dir.join(&name))?;
        match generated.get(&path) {
            None => problems.push(format!(
                "{path}: published, but the code no longer reads this version \
                 (eventstore::schema::decode must keep every version ever stored)"
            )),
            Some(now) => {
                problems.extend(
                    breaking_changes(&committed, now).iter().map(|b| format!("{path}: {b}")),
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, generated.len().max(checked), "every generated version is committed");
    for (path, now) in [
        ("envelope.json", contract::envelope_schema()),
        ("headers.json", contract::headers_schema()),
        ("dead-letter-headers.json", contract::dead_letter_headers_schema()),
    ] {
        let committed = read(&root().join("schemas").join(path))?;
        problems.extend(breaking_changes(&committed, &now).iter().map(|b| format!("{path}: {b}")));
    }
    assert!(
        problems.is_empty(),
        "breaking changes to published schemas; a new shape must be a new event version \
         with an upcaster in eventstore::schema:\n{}",
        problems.join("\n")
    );
    Ok(())
}
