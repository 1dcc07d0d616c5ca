//! Names the companion emits at `/metrics`, and the label values it uses.

use super::{m, Companion, Counter, Gauge, Histogram, Metric, Summary};

pub const ROLLOUT_PHASE_INDEX: Metric = m(
    "dwcp_rollout_phase_index",
    Gauge,
    Companion,
    &["rollout", "phase"],
    "Index of the current phase in the rollout's ladder",
);
pub const ROLLOUT_STATUS: Metric = m(
    "dwcp_rollout_status",
    Gauge,
    Companion,
    &["rollout", "status"],
    "1 for the rollout's current status",
);
pub const ROLLOUT_CANARY_WEIGHT: Metric = m(
    "dwcp_rollout_canary_weight",
    Gauge,
    Companion,
    &["rollout", "segment"],
    "Assigned canary share per segment (0-1)",
);
pub const ROLLOUT_REQUESTS: Metric = m(
    "dwcp_rollout_requests_total",
    Counter,
    Companion,
    &["rollout", "track", "segment"],
    "Requests reported by filters since the companion started",
);
pub const ROLLOUT_ERRORS: Metric = m(
    "dwcp_rollout_errors_total",
    Counter,
    Companion,
    &["rollout", "track", "segment"],
    "Errors reported by filters since the companion started",
);
pub const ROLLOUT_P99: Metric = m(
    "dwcp_rollout_p99_seconds",
    Gauge,
    Companion,
    &["rollout", "track"],
    "p99 latency of the current phase per track",
);
pub const ROLLOUT_E_VALUE: Metric = m(
    "dwcp_rollout_e_value",
    Gauge,
    Companion,
    &["rollout", "test"],
    "Current e-value (mixture likelihood ratio) of each sequential test",
);
pub const ROLLOUT_P_VALUE: Metric = m(
    "dwcp_rollout_p_value",
    Gauge,
    Companion,
    &["rollout", "test"],
    "Always-valid p-value of the error test (min(1, 1/e))",
);
pub const ROLLOUT_TRIGGER_FAILING: Metric = m(
    "dwcp_rollout_trigger_failing",
    Gauge,
    Companion,
    &["rollout", "trigger"],
    "1 when a trigger's latest verdict is fail",
);
pub const ROLLBACKS: Metric = m(
    "dwcp_rollbacks_total",
    Counter,
    Companion,
    &["rollout"],
    "Rollbacks executed since the companion started",
);
pub const PROMOTIONS: Metric = m(
    "dwcp_promotions_total",
    Counter,
    Companion,
    &["rollout"],
    "Promotions since the companion started",
);
pub const TELEMETRY_BATCHES: Metric = m(
    "dwcp_telemetry_batches_total",
    Counter,
    Companion,
    &["result"],
    "Telemetry batches by result",
);
pub const TELEMETRY_PROTOCOL: Metric = m("dwcp_telemetry_batches_by_protocol_total", Counter, Companion, &["protocol"], "Accepted telemetry batches by the wire protocol version the filter sent (0: before versioning)");
pub const TELEMETRY_UNKNOWN: Metric = m("dwcp_telemetry_unknown_total", Counter, Companion, &["rollout", "part"], "Cells, shadow stats and samples of rollouts the companion does not know (skipped, the batch is still accepted)");
pub const TELEMETRY_UNKNOWN_SEGMENTS: Metric = m("dwcp_telemetry_unknown_segments_total", Counter, Companion, &["rollout"], "Cells naming a segment their rollout does not define (counted under the segment \"(other)\", never judged)");
pub const COMPANION_READY: Metric = m("dwcp_companion_ready", Gauge, Companion, &[], "1 while the companion can store its state; 0 after a failed commit (every filter is then routed to stable until a commit succeeds)");
pub const STORE_COMMIT_FAILURES: Metric = m(
    "dwcp_store_commit_failures_total",
    Counter,
    Companion,
    &[],
    "SQLite commits that failed (disk full, I/O error); the state they carried was not served",
);
pub const AUTH_FAILURES: Metric = m(
    "dwcp_auth_failures_total",
    Counter,
    Companion,
    &[],
    "Requests refused for a missing or wrong bearer token",
);
pub const DECISION_LATENCY: Metric = m(
    "dwcp_decision_latency_seconds",
    Summary,
    Companion,
    &["quantile"],
    "Time to ingest and judge one telemetry batch",
);
pub const STATE_VERSION: Metric = m(
    "dwcp_state_version",
    Gauge,
    Companion,
    &[],
    "Version of the dynamic state served to filters",
);
pub const KILL_ALL: Metric = m(
    "dwcp_kill_all",
    Gauge,
    Companion,
    &[],
    "1 when the global kill switch is on",
);
pub const ENGINE_EVENTS: Metric = m(
    "dwcp_engine_events_total",
    Counter,
    Companion,
    &["engine", "kind"],
    "Engine safety signals and observations by engine and kind",
);
pub const ENGINE_MEMORY_RATIO: Metric = m(
    "dwcp_engine_memory_ratio",
    Gauge,
    Companion,
    &["engine"],
    "Last memory sample of an engine as a fraction of its budget",
);
pub const ROLLOUT_SHADOW: Metric = m(
    "dwcp_rollout_shadow_total",
    Counter,
    Companion,
    &["rollout", "event"],
    "Shadow comparisons reported by the filters (kept across companion restarts), by event",
);
pub const FILTER_VMS_ACTIVE: Metric = m(
    "dwcp_filter_vms_active",
    Gauge,
    Companion,
    &[],
    "Filter VMs that sent telemetry in the last 10 s",
);
pub const FILTER_VMS_BY_STATE_VERSION: Metric = m(
    "dwcp_filter_vms_by_state_version",
    Gauge,
    Companion,
    &["state_version"],
    "Filter VMs seen in the last 3 s, by the state version they route with",
);
pub const FILTER_OLDEST_STATE_LAG: Metric = m(
    "dwcp_filter_oldest_state_version_lag",
    Gauge,
    Companion,
    &[],
    "Current state version minus the oldest version any active filter VM routes with",
);
pub const ENGINE_BREAKER_STATE: Metric = m(
    "dwcp_engine_breaker_state",
    Gauge,
    Companion,
    &["engine"],
    "Worst circuit-breaker state of the engine (0 closed, 1 half-open, 2 open)",
);
pub const ENGINE_COMPONENT_BREAKER_STATE: Metric = m(
    "dwcp_engine_component_breaker_state",
    Gauge,
    Companion,
    &["engine", "component"],
    "Circuit-breaker state per component (0 closed, 1 half-open, 2 open)",
);
pub const ENGINE_BREAKER_OPENS: Metric = m(
    "dwcp_engine_breaker_opens",
    Counter,
    Companion,
    &["engine", "component"],
    "Breaker opens per component since start",
);
pub const ENGINE_MEMORY_BYTES: Metric = m(
    "dwcp_engine_memory_bytes",
    Gauge,
    Companion,
    &["engine", "kind"],
    "Memory used and budget reported by the Manager",
);
pub const ENGINE_CLIENT_ERRORS: Metric = m(
    "dwcp_engine_client_errors_total",
    Counter,
    Companion,
    &["engine", "reason"],
    "Engine requests refused as the client's error (malformed frame, over the output budget): never a safety signal",
);

pub const ALLOCATOR_MODEL_LOADED: Metric = m(
    "dwcp_allocator_model_loaded",
    Gauge,
    Companion,
    &[],
    "1 when verified allocator weights are loaded",
);
pub const ALLOCATOR_DECISIONS: Metric = m(
    "dwcp_allocator_decisions_total",
    Counter,
    Companion,
    &["outcome"],
    "Allocator decisions by outcome",
);
pub const ALLOCATOR_SLA_MISSES: Metric = m(
    "dwcp_allocator_sla_misses_total",
    Counter,
    Companion,
    &[],
    "Deferred workloads whose deadline slack was 0",
);
pub const ALLOCATOR_FALLBACKS: Metric = m(
    "dwcp_allocator_fallbacks_total",
    Counter,
    Companion,
    &["reason"],
    "Guard fallbacks to best-fit by reason",
);
pub const ALLOCATOR_UTILISATION: Metric = m(
    "dwcp_allocator_utilisation",
    Gauge,
    Companion,
    &[],
    "Mean node utilisation after the last placement round",
);
pub const ALLOCATOR_BREAKER_STATE: Metric = m(
    "dwcp_allocator_breaker_state",
    Gauge,
    Companion,
    &[],
    "Fallback breaker (0 closed, 1 half-open, 2 open)",
);

pub const TRAIN_ROLLOUT_STATE: Metric = m(
    "dwcp_train_rollout_state",
    Gauge,
    Companion,
    &["rollout", "state"],
    "1 for the state each rollout of the release train's plan is in",
);
pub const TRAIN_GATE_OVERDUE: Metric = m(
    "dwcp_train_gate_overdue_seconds",
    Gauge,
    Companion,
    &["rollout"],
    "How long (plan time) a rollout still waiting for its gates is past its planned start (0 when on time)",
);
pub const TRAIN_FREEZE_ACTIVE: Metric = m(
    "dwcp_train_freeze_active",
    Gauge,
    Companion,
    &[],
    "1 while a freeze window of the release train's plan is on",
);
pub const CONSENSUS_DECISIONS: Metric = m(
    "dwcp_consensus_decisions_total",
    Counter,
    Companion,
    &["engine"],
    "Decisions (batches, slots) committed by an honest replica of a hosted consensus engine",
);
pub const CONSENSUS_VIEW_CHANGES: Metric = m(
    "dwcp_consensus_view_changes_total",
    Counter,
    Companion,
    &["engine"],
    "View changes started by honest replicas (distinct epoch or slot and view)",
);
pub const CONSENSUS_MESSAGES: Metric = m(
    "dwcp_consensus_messages_total",
    Counter,
    Companion,
    &["engine", "kind"],
    "Messages sent inside the in-process cluster, by message kind",
);
pub const CONSENSUS_COMMIT_LATENCY: Metric = m(
    "dwcp_consensus_commit_latency_seconds",
    Histogram,
    Companion,
    &["engine", "le"],
    "Client transaction submit to first commit at an honest replica",
);
pub const CONSENSUS_BYZANTINE: Metric = m(
    "dwcp_consensus_byzantine_detections_total",
    Counter,
    Companion,
    &["engine", "behaviour"],
    "Alarms raised by honest replicas, by behaviour (each forwarded as ByzantineAttackDetected at most once per second per suspect)",
);
pub const CONSENSUS_HEIGHT: Metric = m(
    "dwcp_consensus_committed_height",
    Gauge,
    Companion,
    &["engine"],
    "Highest committed height among honest replicas",
);
pub const CONSENSUS_VIEW: Metric = m(
    "dwcp_consensus_view",
    Gauge,
    Companion,
    &["engine"],
    "Highest current view among honest replicas",
);
pub const CONSENSUS_FAULTY: Metric = m(
    "dwcp_consensus_faulty_replicas",
    Gauge,
    Companion,
    &["engine"],
    "Replicas made Byzantine through the fault route",
);

/// Every metric of the companion, in the order `/metrics` renders them.
pub const COMPANION_METRICS: &[Metric] = &[
    ROLLOUT_PHASE_INDEX,
    ROLLOUT_STATUS,
    ROLLOUT_CANARY_WEIGHT,
    ROLLOUT_REQUESTS,
    ROLLOUT_ERRORS,
    ROLLOUT_P99,
    ROLLOUT_E_VALUE,
    ROLLOUT_P_VALUE,
    ROLLOUT_TRIGGER_FAILING,
    ROLLBACKS,
    PROMOTIONS,
    TELEMETRY_BATCHES,
    TELEMETRY_PROTOCOL,
    TELEMETRY_UNKNOWN_SEGMENTS,
    COMPANION_READY,
    STORE_COMMIT_FAILURES,
    TELEMETRY_UNKNOWN,
    AUTH_FAILURES,
    DECISION_LATENCY,
    STATE_VERSION,
    KILL_ALL,
    ENGINE_EVENTS,
    ENGINE_MEMORY_RATIO,
    ROLLOUT_SHADOW,
    FILTER_VMS_ACTIVE,
    FILTER_VMS_BY_STATE_VERSION,
    FILTER_OLDEST_STATE_LAG,
    ENGINE_BREAKER_STATE,
    ENGINE_COMPONENT_BREAKER_STATE,
    ENGINE_BREAKER_OPENS,
    ENGINE_MEMORY_BYTES,
    ENGINE_CLIENT_ERRORS,
    ALLOCATOR_MODEL_LOADED,
    ALLOCATOR_DECISIONS,
    ALLOCATOR_SLA_MISSES,
    ALLOCATOR_FALLBACKS,
    ALLOCATOR_UTILISATION,
    ALLOCATOR_BREAKER_STATE,
    CONSENSUS_DECISIONS,
    CONSENSUS_VIEW_CHANGES,
    CONSENSUS_MESSAGES,
    CONSENSUS_COMMIT_LATENCY,
    CONSENSUS_BYZANTINE,
    CONSENSUS_HEIGHT,
    CONSENSUS_VIEW,
    CONSENSUS_FAULTY,
    TRAIN_ROLLOUT_STATE,
    TRAIN_GATE_OVERDUE,
    TRAIN_FREEZE_ACTIVE,
];

/// `event` label values of [`ROLLOUT_SHADOW`].
pub const ROLLOUT_SHADOW_EVENTS: [&str; 10] = [
    "sent",
    "compared",
    "mismatch",
    "noise",
    "noise_compared",
    "stable_differs",
    "shadow_error",
    "slower",
    "side_call_failed",
    "skipped",
];

/// `kind` label values of [`ENGINE_EVENTS`], one per `EngineEvent` variant
/// (`dwcp_core::signals::EngineEvent::kind_label`).
pub const ENGINE_EVENT_KINDS: &[&str] = &[
    "byzantine",
    "integrity_violation",
    "breaker_storm",
    "memory_exhaustion",
    "breaker_open",
    "memory_sample",
];

/// `trigger` label values of [`ROLLOUT_TRIGGER_FAILING`] (the judge's guardrails 1–4).
pub const TRIGGERS: &[&str] = &["1:error_rate", "2:p99", "3:success", "4:throughput"];

/// `state` label values of [`TRAIN_ROLLOUT_STATE`] (`dwcp_plan::train::TrackState::name`).
pub const TRAIN_STATES: &[&str] = &[
    "waiting",
    "running",
    "done",
    "rolled_back",
    "paused",
    "held",
    "skipped",
];
