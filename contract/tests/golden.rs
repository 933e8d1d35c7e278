//! The committed contract (`contract/schemas/`, `contract/asyncapi.json`) is what the code
//! generates. Regenerate with `UPDATE_CONTRACT=1 cargo test -p contract --test golden`;
//! an event version's schema that would change in a breaking way is not rewritten (the
//! change must come as a new version with an upcaster).

use std::path::PathBuf;

use contract::compat::breaking_changes;
use serde_json::Value;

fn updating() -> bool {
    std::env::var("UPDATE_CONTRACT").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[test]
fn committed_contract_matches_the_code() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (mut stale, mut refused) = (Vec::new(), Vec::new());
    for (path, text) in contract::files() {
        let file = root.join(&path);
        let committed = std::fs::read_to_string(&file).ok();
        if committed.as_deref() == Some(text.as_str()) {
            continue;
        }
        if !updating() {
            stale.push(path);
            continue;
        }
        if let (true, Some(committed)) = (path.starts_with("schemas/events/"), &committed) {
            let old: Value = serde_json::from_str(committed)?;
            let new: Value = serde_json::from_str(&text)?;
            let breaking = breaking_changes(&old, &new);
            if !breaking.is_empty() {
                let list: Vec<String> = breaking.iter().map(ToString::to_string).collect();
                refused.push(format!("{path}: {}", list.join("; ")));
                continue;
            }
        }
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, text)?;
    }
    assert!(
        refused.is_empty(),
        "not rewritten: a published event version's schema may not change in a breaking \
         way; add a new version (and its upcaster in eventstore::schema) instead:\n{}",
        refused.join("\n")
    );
    assert!(
        stale.is_empty(),
        "the committed contract differs from what the code generates: {stale:?}\n\
         regenerate with `UPDATE_CONTRACT=1 cargo test -p contract --test golden` and \
         review the diff"
    );
    Ok(())
}
