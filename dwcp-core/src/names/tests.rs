use super::*;
use crate::decision::Why;
use crate::rollout::EventKind;
use std::collections::BTreeSet;

#[test]
fn names_are_unique_per_emitter_and_prefixed() {
    let mut seen = BTreeSet::new();
    for m in all_metrics() {
        assert!(m.name.starts_with("dwcp_"), "{}", m.name);
        assert!(
            seen.insert((m.name, m.source as u8)),
            "{} listed twice",
            m.name
        );
        assert!(!m.help.is_empty(), "{} has no help", m.name);
    }
}

#[test]
fn every_decision_reason_is_a_listed_filter_event() {
    for why in [
        Why::Bucketed,
        Why::NoState,
        Why::Stale,
        Why::KillAll,
        Why::RolloutOff,
        Why::NoKey,
        Why::BadHeader,
    ] {
        assert!(FILTER_EVENTS.contains(&why.as_str()), "{}", why.as_str());
    }
}

#[test]
fn event_kinds_serialise_as_their_names() {
    for k in EventKind::ALL {
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        let back: EventKind = serde_json::from_value(k.as_str().into()).unwrap();
        assert_eq!(back, k);
    }
}

/// `monitoring/names.json` (read by the dashboards generator and the alert rules' cross-check) is this
/// list; regenerate it with `dwcp-analyzer names > monitoring/names.json`.
#[test]
fn the_monitoring_copy_is_this_list() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../monitoring/names.json"
    ));
    let file: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        file,
        to_json(),
        "monitoring/names.json is stale: run `dwcp-analyzer names > monitoring/names.json`"
    );
}
