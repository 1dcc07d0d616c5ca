//! Every metric and event name the product emits, in one list. The companion's `/metrics`
//! (`analyzer/src/metrics.rs`), the filter's Envoy stats (`filter/src/metrics.rs`), the dashboards
//! generator and the alert rules' cross-check (`monitoring/names.json`, written by
//! `dwcp-analyzer names` and kept equal to this list by a test) all take their names from here, so a
//! rename is one edit and a dashboard cannot query a name nothing emits.

use serde::Serialize;

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Counter,
    Gauge,
    Summary,
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Summary => "summary",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Who emits a metric: the companion at `/metrics`, or the filter through Envoy's `/stats/prometheus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Companion,
    Filter,
}

/// One metric: name, type, help text, emitter, and its label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    pub source: Source,
    pub labels: &'static [&'static str],
}

const fn m(
    name: &'static str,
    kind: MetricKind,
    source: Source,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        help,
        source,
        labels,
    }
}

use MetricKind::{Counter, Gauge, Histogram, Summary};
use Source::{Companion, Filter};

pub mod companion;
pub mod filter;
pub use companion::*;
pub use filter::*;

/// Every metric the product emits.
pub fn all_metrics() -> impl Iterator<Item = &'static Metric> {
    COMPANION_METRICS.iter().chain(FILTER_METRICS.iter())
}

/// The whole list as JSON (what `dwcp-analyzer names` prints and `monitoring/names.json` holds).
pub fn to_json() -> serde_json::Value {
    serde_json::json!({
        "metrics": all_metrics().collect::<Vec<_>>(),
        "filter_events": FILTER_EVENTS,
        "filter_shadow_events": FILTER_SHADOW_EVENTS,
        "rollout_shadow_events": ROLLOUT_SHADOW_EVENTS,
        "engine_event_kinds": ENGINE_EVENT_KINDS,
        "rollout_event_kinds": crate::rollout::EventKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "triggers": TRIGGERS,
    })
}

#[cfg(test)]
mod tests;
