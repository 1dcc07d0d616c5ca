//! Names the filter emits as Envoy stats (tags encoded in the stat name, see `filter/src/metrics.rs`),
//! and the event label values it counts.

use super::{m, Counter, Filter, Gauge, Histogram, Metric};

pub const REQUESTS: Metric = m(
    "dwcp_requests_total",
    Counter,
    Filter,
    &["rollout", "track", "segment"],
    "Requests routed by the filter",
);
pub const ERRORS: Metric = m(
    "dwcp_errors_total",
    Counter,
    Filter,
    &["rollout", "track", "segment"],
    "Requests counted as errors (5xx, no response, 4xx when configured)",
);
pub const REQUEST_DURATION: Metric = m("dwcp_request_duration_seconds", Histogram, Filter, &["rollout", "track", "segment", "le"], "Request-headers-to-response-end latency (buckets and count; the sum is dwcp_request_duration_us_sum)");
pub const REQUEST_DURATION_US_SUM: Metric = m(
    "dwcp_request_duration_us_sum",
    Counter,
    Filter,
    &["rollout", "track", "segment"],
    "Sum of request latencies, µs (Envoy counters are integers)",
);
pub const FILTER_EVENTS_TOTAL: Metric = m(
    "dwcp_filter_events_total",
    Counter,
    Filter,
    &["event"],
    "Decision reasons and sync results",
);
pub const SHADOW: Metric = m(
    "dwcp_shadow_total",
    Counter,
    Filter,
    &["rollout", "event"],
    "Shadow copies and comparisons by event",
);
pub const FILTER_STATE_VERSION: Metric = m(
    "dwcp_state_version",
    Gauge,
    Filter,
    &[],
    "Version of the dynamic state the filter routes with",
);
pub const FILTER_STATE_STALE: Metric = m(
    "dwcp_state_stale",
    Gauge,
    Filter,
    &[],
    "1 when the filter's state is stale (everything goes to stable)",
);

/// Every metric of the filter.
pub const FILTER_METRICS: &[Metric] = &[
    REQUESTS,
    ERRORS,
    REQUEST_DURATION,
    REQUEST_DURATION_US_SUM,
    FILTER_EVENTS_TOTAL,
    SHADOW,
    FILTER_STATE_VERSION,
    FILTER_STATE_STALE,
];

/// `event` label values of [`FILTER_EVENTS_TOTAL`]: the decision reasons (`decision::Why::as_str`) and
/// the sync results.
pub const FILTER_EVENTS: &[&str] = &[
    "bucketed",
    "no_state",
    "stale",
    "kill_all",
    "rollout_off",
    "no_key",
    "bad_header",
    SYNC_OK,
    SYNC_FAILED,
];

/// The companion answered a batch with a state.
pub const SYNC_OK: &str = "sync_ok";
/// A batch POST failed (kept for the next exchange unless refused with a 4xx).
pub const SYNC_FAILED: &str = "sync_failed";

/// `event` label values of [`SHADOW`], one per `ShadowStats` counter.
pub const FILTER_SHADOW_EVENTS: [&str; 18] = [
    "sent",
    "compared",
    "mismatch",
    "mismatch_status",
    "mismatch_headers",
    "mismatch_body",
    "noise",
    "noise_compared",
    "stable_differs",
    "noise_call_failed",
    "shadow_error",
    "primary_error",
    "slower",
    "skipped_body_too_big",
    "skipped_not_eligible",
    "skipped_in_flight",
    "skipped_primary_incomplete",
    "side_call_failed",
];
