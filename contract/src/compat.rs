//! The compatibility gate: what may change in the schema of a published event version.
//!
//! A stored event is never rewritten, and consumers keep reading a version they know. So
//! within one version, every payload valid before must stay valid (nothing is tightened:
//! no new required property, no narrower type, enum, pattern, format or bound, no removed
//! `oneOf`/`anyOf` alternative), and every property a consumer could read must stay
//! there with its type. The one change that passes is an added optional property (and
//! loosening, such as a wider enum or a removed bound). Anything else is a new version
//! with an upcaster in `eventstore::schema`.
//!
//! `$ref`s are followed within each document (`#/$defs/...`), so a change deep inside a
//! shared definition is reported at the path a consumer would reach it by.

use std::fmt;

use serde_json::{Map, Value};

/// One breaking change, at the JSON pointer of the instance location (`/lines/items/sku`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breaking {
    pub path: String,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    PropertyRemoved(String),
    BecameRequired(String),
    RequiredAdded(String),
    TypeChanged {
        old: Vec<String>,
        new: Vec<String>,
    },
    EnumNarrowed {
        removed: Vec<Value>,
    },
    ConstChanged {
        old: Option<Value>,
        new: Value,
    },
    PatternChanged {
        old: Option<String>,
        new: String,
    },
    FormatChanged {
        old: Option<String>,
        new: String,
    },
    /// A minimum, maximum, length, item or property count, or `multipleOf` that now
    /// refuses values it accepted.
    Tightened {
        keyword: String,
        old: Option<Value>,
        new: Value,
    },
    AdditionalPropertiesClosed,
    AlternativeRemoved {
        keyword: String,
        index: usize,
    },
    ConstraintAdded(String),
    /// A `$ref` that does not resolve inside its document.
    UnresolvedRef(String),
}

impl fmt::Display for Breaking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.path.is_empty() { "/" } else { &self.path };
        write!(f, "{at}: {:?}", self.change)
    }
}

/// The breaking changes from `old` to `new`, two schemas of the same event version.
pub fn breaking_changes(old: &Value, new: &Value) -> Vec<Breaking> {
    let mut diff = Diff { old_root: old, new_root: new, found: Vec::new(), seen: Vec::new() };
    diff.compare(old, new, "");
    diff.found
}

struct Diff<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    found: Vec<Breaking>,
    /// The pairs of `$ref`s being compared, so recursive definitions end.
    seen: Vec<(String, String)>,
}

const LOWER_BOUNDS: [&str; 5] =
    ["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"];
const UPPER_BOUNDS: [&str; 5] =
    ["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"];
/// Keywords whose appearance anywhere in `new` constrains what `old` did not.
const ADDED_CONSTRAINTS: [&str; 5] = ["not", "if", "dependentRequired", "uniqueItems", "contains"];

impl<'a> Diff<'a> {
    fn report(&mut self, path: &str, change: Change) {
        self.found.push(Breaking { path: path.to_owned(), change });
    }

    fn compare(&mut self, old: &'a Value, new: &'a Value, path: &str) {
        let (Some(old), Some(new)) = (self.resolve_old(old, path), self.resolve_new(new, path))
        else {
            return;
        };
        let pair = (ref_of(old.1), ref_of(new.1));
        if let (Some(a), Some(b)) = &pair {
            let key = (a.clone(), b.clone());
            if self.seen.contains(&key) {
                return;
            }
            self.seen.push(key);
        }
        self.compare_resolved(old.0, new.0, path);
        if let (Some(_), Some(_)) = pair {
            self.seen.pop();
        }
    }

    fn resolve_old(&mut self, schema: &'a Value, path: &str) -> Option<(&'a Value, &'a Value)> {
        let root = self.old_root;
        self.resolve(root, schema, path)
    }

    fn resolve_new(&mut self, schema: &'a Value, path: &str) -> Option<(&'a Value, &'a Value)> {
        let root = self.new_root;
        self.resolve(root, schema, path)
    }

    /// `schema` with its `$ref` chain followed, and the schema the chain started from.
    fn resolve(
        &mut self,
        root: &'a Value,
        schema: &'a Value,
        path: &str,
    ) -> Option<(&'a Value, &'a Value)> {
        let mut current = schema;
        for _ in 0..32 {
            let Some(target) = current.get("$ref").and_then(Value::as_str) else {
                return Some((current, schema));
            };
            match resolve_pointer(root, target) {
                Some(next) => current = next,
                None => {
                    self.report(path, Change::UnresolvedRef(target.to_owned()));
                    return None;
                }
            }
        }
        Some((current, schema))
    }

    fn compare_resolved(&mut self, old: &'a Value, new: &'a Value, path: &str) {
        let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
            // `true`/`false` schemas: only `true` to anything else tightens.
            if old != new && old.as_bool() != Some(false) {
                self.report(path, Change::ConstraintAdded("boolean schema".to_owned()));
            }
            return;
        };
        self.compare_types(old, new, path);
        self.compare_values(old, new, path);
        self.compare_objects(old, new, path);
        if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
            self.compare(old_items, new_items, &format!("{path}/items"));
        } else if new.contains_key("items") && !old.contains_key("items") {
            self.report(path, Change::ConstraintAdded("items".to_owned()));
        }
        for keyword in ["oneOf", "anyOf"] {
            self.compare_alternatives(old, new, keyword, path);
        }
        self.compare_all_of(old, new, path);
        for keyword in ADDED_CONSTRAINTS {
            if new.get(keyword) != old.get(keyword) && new.contains_key(keyword) {
                self.report(path, Change::ConstraintAdded(keyword.to_owned()));
            }
        }
    }

    fn compare_types(&mut self, old: &Map<String, Value>, new: &Map<String, Value>, path: &str) {
        let (old_types, new_types) = (types(old), types(new));
        if old_types != new_types && !(old_types.is_empty() && new_types.is_empty()) {
            self.report(path, Change::TypeChanged { old: old_types, new: new_types });
        }
    }

    fn compare_values(&mut self, old: &Map<String, Value>, new: &Map<String, Value>, path: &str) {
        if let Some(new_enum) = new.get("enum").and_then(Value::as_array) {
            let removed: Vec<Value> = match old.get("enum").and_then(Value::as_array) {
                Some(old_enum) => {
                    old_enum.iter().filter(|v| !new_enum.contains(v)).cloned().collect()
                }
                None => vec![Value::String("(any value)".to_owned())],
            };
            if !removed.is_empty() {
                self.report(path, Change::EnumNarrowed { removed });
            }
        }
        if let Some(new_const) = new.get("const") {
            if old.get("const") != Some(new_const) {
                let old = old.get("const").cloned();
                self.report(path, Change::ConstChanged { old, new: new_const.clone() });
            }
        }
        for (keyword, is_pattern) in [("pattern", true), ("format", false)] {
            if let Some(new_value) = new.get(keyword).and_then(Value::as_str) {
                let old_value = old.get(keyword).and_then(Value::as_str);
                if old_value != Some(new_value) {
                    let old = old_value.map(str::to_owned);
                    let new = new_value.to_owned();
                    self.report(
                        path,
                        if is_pattern {
                            Change::PatternChanged { old, new }
                        } else {
                            Change::FormatChanged { old, new }
                        },
                    );
                }
            }
        }
        for (bounds, lower) in [(LOWER_BOUNDS, true), (UPPER_BOUNDS, false)] {
            for keyword in bounds {
                let Some(new_bound) = new.get(keyword).and_then(Value::as_f64) else { continue };
                let old_bound = old.get(keyword).and_then(Value::as_f64);
                let tighter = match old_bound {
                    None => true,
                    Some(old_bound) if lower => new_bound > old_bound,
                    Some(old_bound) => new_bound < old_bound,
                };
                if tighter {
                    let (old, new) = (old.get(keyword).cloned(), new[keyword].clone());
                    self.report(path, Change::Tightened { keyword: keyword.to_owned(), old, new });
                }
            }
        }
        if let Some(new_multiple) = new.get("multipleOf") {
            if old.get("multipleOf") != Some(new_multiple) {
                let old = old.get("multipleOf").cloned();
                let keyword = "multipleOf".to_owned();
                self.report(path, Change::Tightened { keyword, old, new: new_multiple.clone() });
            }
        }
    }

    fn compare_objects(
        &mut self,
        old: &'a Map<String, Value>,
        new: &'a Map<String, Value>,
        path: &str,
    ) {
        let old_properties = old.get("properties").and_then(Value::as_object);
        let new_properties = new.get("properties").and_then(Value::as_object);
        for (name, old_property) in old_properties.into_iter().flatten() {
            match new_properties.and_then(|properties| properties.get(name)) {
                Some(new_property) => {
                    self.compare(old_property, new_property, &format!("{path}/{name}"));
                }
                None => self.report(path, Change::PropertyRemoved(name.clone())),
            }
        }
        let old_required = required(old);
        for name in required(new) {
            if !old_required.contains(&name) {
                if old_properties.is_some_and(|properties| properties.contains_key(&name)) {
                    self.report(path, Change::BecameRequired(name));
                } else {
                    self.report(path, Change::RequiredAdded(name));
                }
            }
        }
        match (old.get("additionalProperties"), new.get("additionalProperties")) {
            (Some(Value::Bool(false)), _) | (_, None) => {}
            (_, Some(Value::Bool(false))) => self.report(path, Change::AdditionalPropertiesClosed),
            (Some(old_extra), Some(new_extra)) => {
                self.compare(old_extra, new_extra, &format!("{path}/*"));
            }
            (None, Some(new_extra)) if new_extra != &Value::Bool(true) => {
                self.report(path, Change::ConstraintAdded("additionalProperties".to_owned()));
            }
            (None, Some(_)) => {}
        }
    }

    /// Each old alternative must still be there: some new alternative accepts it without
    /// a breaking change.
    fn compare_alternatives(
        &mut self,
        old: &'a Map<String, Value>,
        new: &'a Map<String, Value>,
        keyword: &str,
        path: &str,
    ) {
        let old_alternatives = old.get(keyword).and_then(Value::as_array);
        let new_alternatives = new.get(keyword).and_then(Value::as_array);
        let (Some(old_alternatives), Some(new_alternatives)) = (old_alternatives, new_alternatives)
        else {
            if new_alternatives.is_some() {
                self.report(path, Change::ConstraintAdded(keyword.to_owned()));
            }
            return;
        };
        for (index, old_alternative) in old_alternatives.iter().enumerate() {
            let mut candidates = new_alternatives.iter().map(|new_alternative| {
                let mut trial = Diff {
                    old_root: self.old_root,
                    new_root: self.new_root,
                    found: Vec::new(),
                    seen: self.seen.clone(),
                };
                trial.compare(old_alternative, new_alternative, path);
                trial.found
            });
            if candidates.any(|found| found.is_empty()) {
                continue;
            }
            if old_alternatives.len() == new_alternatives.len() {
                // The same alternative, changed: report how, not that it went.
                self.compare(old_alternative, &new_alternatives[index], path);
            } else {
                self.report(
                    path,
                    Change::AlternativeRemoved { keyword: keyword.to_owned(), index },
                );
            }
        }
    }

    fn compare_all_of(
        &mut self,
        old: &'a Map<String, Value>,
        new: &'a Map<String, Value>,
        path: &str,
    ) {
        let old_all = old.get("allOf").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        let new_all = new.get("allOf").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        for (index, new_part) in new_all.iter().enumerate() {
            match old_all.get(index) {
                Some(old_part) => self.compare(old_part, new_part, path),
                None => self.report(path, Change::ConstraintAdded(format!("allOf[{index}]"))),
            }
        }
    }
}

fn ref_of(schema: &Value) -> Option<String> {
    schema.get("$ref").and_then(Value::as_str).map(str::to_owned)
}

/// A local `$ref` (`#/$defs/Money`) in `root`; `None` for another document.
pub fn resolve_pointer<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    let pointer = reference.strip_prefix('#')?;
    let decoded = percent_decode(pointer);
    root.pointer(&decoded)
}

/// A URI fragment's `%XX` escapes (JSON pointers in `$ref` are URI fragments).
fn percent_decode(fragment: &str) -> String {
    let bytes = fragment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON types a schema allows, sorted; empty when it does not say.
fn types(schema: &Map<String, Value>) -> Vec<String> {
    let mut types: Vec<String> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => {
            many.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    };
    types.sort();
    types
}

fn required(schema: &Map<String, Value>) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}
