//! `dwcp-analyzer check`: validates the companion's config and, given the filter's plugin config,
//! reports rollouts that exist in one and not the other (a rollout only the filter routes is never
//! judged; one only the companion judges never gets traffic).
//!
//! The plugin config is read as JSON, or found inside the YAML it ships in: an Istio `WasmPlugin`
//! (`pluginConfig:` written as a JSON object) or an Envoy config (the `value: |` block of the Wasm
//! filter's `configuration`).

use crate::config::Config;
use dwcp_core::config::FilterConfig;
use std::collections::BTreeSet;

/// Why the plugin config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PluginConfigError {
    #[error("{0}: no plugin config found (a JSON file, a WasmPlugin pluginConfig or an Envoy `value: |` block)")]
    NotFound(String),
    #[error("{path}: {source}")]
    Invalid {
        path: String,
        source: dwcp_core::config::ConfigError,
    },
}

/// The plugin config JSON inside `text` (see the module docs for where it is looked for).
pub fn plugin_config_json(text: &str) -> Option<String> {
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return Some(text.to_string());
    }
    if let Some(at) = text.find("pluginConfig:") {
        let rest = &text[at..];
        let start = rest.find('{')?;
        let mut depth = 0usize;
        let mut in_str = false;
        let mut escaped = false;
        for (i, ch) in rest[start..].char_indices() {
            match ch {
                _ if escaped => escaped = false,
                '\\' if in_str => escaped = true,
                '"' => in_str = !in_str,
                '{' if !in_str => depth += 1,
                '}' if !in_str => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(rest[start..start + i + 1].to_string());
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with("value: |") {
            let base = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines
                .by_ref()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > base)
                .collect();
            return Some(block.join("\n"));
        }
    }
    None
}

/// Loads and validates a plugin config file.
pub fn load_plugin_config(path: &str, text: &str) -> Result<FilterConfig, PluginConfigError> {
    let json = plugin_config_json(text).ok_or_else(|| PluginConfigError::NotFound(path.into()))?;
    FilterConfig::from_slice(json.as_bytes()).map_err(|source| PluginConfigError::Invalid {
        path: path.into(),
        source,
    })
}

/// Rollouts defined in only one of the two configs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mismatch {
    pub only_companion: Vec<String>,
    pub only_filter: Vec<String>,
}

impl Mismatch {
    pub fn is_empty(&self) -> bool {
        self.only_companion.is_empty() && self.only_filter.is_empty()
    }
}

/// Compares the rollouts of the companion's config with those of the filter's.
pub fn compare(companion: &Config, filter: &FilterConfig) -> Mismatch {
    let c: BTreeSet<&str> = companion
        .rollouts
        .iter()
        .map(|r| r.spec.name.as_str())
        .collect();
    let f: BTreeSet<&str> = filter.rollouts.iter().map(|r| r.name.as_str()).collect();
    Mismatch {
        only_companion: c.difference(&f).map(|s| s.to_string()).collect(),
        only_filter: f.difference(&c).map(|s| s.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str =
        "token = \"long-enough-token\"\n[[rollout]]\nname = \"checkout\"\n[[rollout]]\nname = \"search\"\n";

    #[test]
    fn reports_rollouts_in_one_config_only() {
        let c = Config::parse(TOML, "a.toml").unwrap();
        let f = load_plugin_config(
            "p.json",
            r#"{"rollouts": [{"name": "checkout"}, {"name": "cart"}]}"#,
        )
        .unwrap();
        let m = compare(&c, &f);
        assert_eq!(m.only_companion, vec!["search"]);
        assert_eq!(m.only_filter, vec!["cart"]);
        let same = load_plugin_config(
            "p.json",
            r#"{"rollouts": [{"name": "checkout"}, {"name": "search"}]}"#,
        )
        .unwrap();
        assert!(compare(&c, &same).is_empty());
    }

    #[test]
    fn finds_the_plugin_config_in_the_shipped_yaml() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        for (file, rollout) in [
            ("envoy/envoy.yaml", "demo"),
            ("istio/wasmplugin-sidecar.yaml", "checkout"),
        ] {
            let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
            let f = load_plugin_config(file, &text).unwrap();
            assert!(
                f.rollouts.iter().any(|r| r.name == rollout),
                "{file}: {:?}",
                f.rollouts.iter().map(|r| &r.name).collect::<Vec<_>>()
            );
        }
        assert!(load_plugin_config("x.yaml", "a: 1\n").is_err());
    }
}
