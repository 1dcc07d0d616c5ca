//! Envoy metric names. Tags are encoded in the stat name as `_<tag>=.=<value>;.;` and extracted by the
//! `stats_config.stats_tags` regexes shipped in `envoy/envoy.yaml` (`(_<tag>=\.=(.+?);\.;)`), so
//! `/stats/prometheus` shows e.g. `dwcp_requests_total{rollout="checkout",track="canary",segment="beta"}`.
//! The names come from `dwcp_core::names` (the one list the dashboards and alert rules are checked
//! against).

use dwcp_core::names::{
    ERRORS, FILTER_EVENTS_TOTAL, FILTER_SHADOW_EVENTS, REQUESTS, REQUEST_DURATION,
    REQUEST_DURATION_US_SUM, SHADOW,
};
use dwcp_core::telemetry::Batch;

/// Gauge of the state version the filter routes with.
pub const STATE_VERSION: &str = dwcp_core::names::FILTER_STATE_VERSION.name;
/// Gauge: 1 while the state is stale.
pub const STATE_STALE: &str = dwcp_core::names::FILTER_STATE_STALE.name;

/// Upper bounds (seconds) of the latency histogram buckets exported to Prometheus.
pub const LE_SECONDS: &[(&str, f64)] = &[
    ("0.001", 1e3),
    ("0.0025", 2.5e3),
    ("0.005", 5e3),
    ("0.01", 1e4),
    ("0.025", 2.5e4),
    ("0.05", 5e4),
    ("0.1", 1e5),
    ("0.25", 2.5e5),
    ("0.5", 5e5),
    ("1", 1e6),
    ("2.5", 2.5e6),
    ("5", 5e6),
    ("10", 1e7),
    ("+Inf", f64::INFINITY),
];

pub fn tag(name: &str, value: &str) -> String {
    format!("_{name}=.={value};.;")
}

fn cell_tags(rollout: &str, track: &str, segment: &str) -> String {
    format!(
        "{}{}{}",
        tag("rollout", rollout),
        tag("track", track),
        tag("segment", segment)
    )
}

/// A counter increment to apply: (metric name, delta).
pub type Delta = (String, u64);

/// The counter deltas a batch represents. Latency buckets are cumulative (`le`), Prometheus-style.
pub fn deltas(batch: &Batch) -> Vec<Delta> {
    let mut out = Vec::new();
    for c in &batch.cells {
        let t = cell_tags(&c.rollout, c.track.as_str(), &c.segment);
        out.push((format!("{}{t}", REQUESTS.name), c.requests));
        out.push((format!("{}{t}", ERRORS.name), c.errors));
        for (le, bound_us) in LE_SECONDS {
            let n = if bound_us.is_infinite() {
                c.latency_us.count
            } else {
                c.latency_us.count_le(*bound_us)
            };
            out.push((
                format!("{}_bucket{t}{}", REQUEST_DURATION.name, tag("le", le)),
                n,
            ));
        }
        out.push((
            format!("{}_count{t}", REQUEST_DURATION.name),
            c.latency_us.count,
        ));
        out.push((
            format!("{}{t}", REQUEST_DURATION_US_SUM.name),
            c.latency_us.sum,
        ));
    }
    for (reason, n) in &batch.counters {
        out.push((
            format!("{}{}", FILTER_EVENTS_TOTAL.name, tag("event", reason)),
            *n,
        ));
    }
    for (rollout, st) in &batch.shadow {
        let r = tag("rollout", rollout);
        let values = [
            st.requests,
            st.compared,
            st.mismatches,
            st.mismatch_status,
            st.mismatch_headers,
            st.mismatch_body,
            st.noise,
            st.noise_compared,
            st.stable_differs,
            st.noise_call_failed,
            st.shadow_errors,
            st.primary_errors,
            st.slower,
            st.skipped_body_too_big,
            st.skipped_not_eligible,
            st.skipped_in_flight,
            st.skipped_primary_incomplete,
            st.side_call_failed,
        ];
        for (event, n) in FILTER_SHADOW_EVENTS.iter().zip(values) {
            out.push((format!("{}{r}{}", SHADOW.name, tag("event", event)), n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwcp_core::decision::Track;
    use dwcp_core::telemetry::Accumulator;

    #[test]
    fn deltas_match_the_batch() {
        let mut a = Accumulator::new(vec!["r".into()], vec!["standard".into()]);
        a.record(0, Track::Canary, 0, Some(1), true, 3_000);
        a.record(0, Track::Canary, 0, Some(1), false, 300_000);
        let d = deltas(&a.take_batch("vm", 1, 1, 0));
        let get = |n: &str| d.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        let t = "_rollout=.=r;.;_track=.=canary;.;_segment=.=standard;.;";
        assert_eq!(get(&format!("dwcp_requests_total{t}")), Some(2));
        assert_eq!(get(&format!("dwcp_errors_total{t}")), Some(1));
        assert_eq!(
            get(&format!(
                "dwcp_request_duration_seconds_bucket{t}_le=.=0.005;.;"
            )),
            Some(1)
        );
        assert_eq!(
            get(&format!(
                "dwcp_request_duration_seconds_bucket{t}_le=.=0.5;.;"
            )),
            Some(2)
        );
        assert_eq!(
            get(&format!(
                "dwcp_request_duration_seconds_bucket{t}_le=.=+Inf;.;"
            )),
            Some(2)
        );
    }

    #[test]
    fn shadow_counters_are_exported_per_rollout() {
        let mut a = Accumulator::new(vec!["r".into()], vec!["standard".into()]);
        a.shadow_mut("r").requests = 3;
        a.shadow_mut("r").side_call_failed = 1;
        let d = deltas(&a.take_batch("vm", 1, 1, 0));
        let get = |n: &str| d.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(
            get("dwcp_shadow_total_rollout=.=r;.;_event=.=sent;.;"),
            Some(3)
        );
        assert_eq!(
            get("dwcp_shadow_total_rollout=.=r;.;_event=.=side_call_failed;.;"),
            Some(1)
        );
    }
}
