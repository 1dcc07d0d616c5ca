//! A whole flagd file: `{"flags": {...}, "$evaluators": {...}, "metadata": {...}}`.
//!
//! Invariants: flags are kept sorted by key (deterministic iteration, binary-search lookup, no
//! hasher); every `$evaluators` entry is compiled on its own even if unused, so a broken shared
//! rule is reported once at its own path; `$ref`s are inlined per flag at parse time.

use serde_json::{Map, Value};

use super::parse::{err, join, Compiler, Refs};
use super::{Flag, TargetingError};

const FILE_FIELDS: [&str; 4] = ["$schema", "flags", "$evaluators", "metadata"];

#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    flags: Vec<Flag>,
    /// Flags that failed to parse, by key (sorted), lenient mode only.
    invalid: Vec<(String, TargetingError)>,
    /// Broken `$evaluators` entries, lenient mode only.
    evaluator_errors: Vec<TargetingError>,
    metadata: Map<String, Value>,
}

impl FlagSet {
    /// Parses a flagd file, rejecting it if any flag or evaluator is invalid (the first error).
    pub fn parse(doc: &Value, path: &str) -> Result<FlagSet, TargetingError> {
        let set = FlagSet::parse_lenient(doc, path)?;
        let first = set.errors().next().cloned();
        match first {
            Some(e) => Err(e),
            None => Ok(set),
        }
    }

    /// Parses a flagd file like flagd does: an invalid flag is kept aside (see [`FlagSet::error`],
    /// flagd's `PARSE_ERROR`) and the others load. Only a malformed file shape is an `Err`.
    pub fn parse_lenient(doc: &Value, path: &str) -> Result<FlagSet, TargetingError> {
        let obj = doc
            .as_object()
            .ok_or_else(|| err(path, "a flag file must be an object"))?;
        if let Some(unknown) = obj.keys().find(|k| !FILE_FIELDS.contains(&k.as_str())) {
            return Err(err(
                &join(path, unknown),
                format!("unknown field (expected one of {FILE_FIELDS:?})"),
            ));
        }
        let flags_path = join(path, "flags");
        let flags = match obj.get("flags") {
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(err(
                    &flags_path,
                    "expected an object of flag key to definition",
                ))
            }
            None => return Err(err(path, "missing field \"flags\"")),
        };
        let evaluators_path = join(path, "$evaluators");
        let defs = match obj.get("$evaluators") {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => {
                return Err(err(
                    &evaluators_path,
                    "expected an object of evaluator name to rule",
                ))
            }
        };
        let metadata = match obj.get("metadata") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(err(&join(path, "metadata"), "expected an object")),
        };
        let refs = Refs {
            defs,
            path: &evaluators_path,
        };

        let mut evaluator_errors = Vec::new();
        for (name, def) in defs.into_iter().flatten() {
            let mut ignored = Vec::new();
            if let Err(e) = Compiler::new(refs, &mut ignored).compile_evaluator(name, def) {
                evaluator_errors.push(e);
            }
        }

        let mut set = FlagSet {
            metadata,
            evaluator_errors,
            ..FlagSet::default()
        };
        for (key, def) in flags {
            match Flag::parse_with(key, def, &join(&flags_path, key), refs) {
                Ok(flag) => set.flags.push(flag),
                Err(e) => set.invalid.push((key.clone(), e)),
            }
        }
        set.flags.sort_by(|a, b| a.key.cmp(&b.key));
        set.invalid.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(set)
    }

    /// The flag with this key, if it exists and parsed.
    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.flags
            .binary_search_by(|f| f.key.as_str().cmp(key))
            .ok()
            .and_then(|i| self.flags.get(i))
    }

    /// Why the flag with this key failed to parse (lenient mode).
    pub fn error(&self, key: &str) -> Option<&TargetingError> {
        self.invalid
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.invalid.get(i))
            .map(|(_, e)| e)
    }

    /// Every parse error: broken evaluators, then invalid flags by key.
    pub fn errors(&self) -> impl Iterator<Item = &TargetingError> {
        self.evaluator_errors
            .iter()
            .chain(self.invalid.iter().map(|(_, e)| e))
    }

    /// Every warning of every loaded flag (see [`Flag::warnings`]).
    pub fn warnings(&self) -> impl Iterator<Item = &TargetingError> {
        self.flags.iter().flat_map(|f| f.warnings().iter())
    }

    /// The loaded flags, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = &Flag> {
        self.flags.iter()
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The file-level `metadata` object (empty when absent).
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }
}
