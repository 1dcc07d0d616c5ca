//! Traffic models: what a simulated rollout sees, per simulated second.
//!
//! * arrivals: Poisson with a bursty rate — base 200 req/s × an AR(1) log-normal factor (σ 0.3, ρ 0.8)
//!   × occasional spikes (×3 for ~10 s, 0.5 % chance per second);
//! * segment mix internal 5 %, beta 5 %, premium 10 %, enterprise 10 %, standard 70 %; each request goes to
//!   the canary with its segment's share from `RolloutSpec::shares(phase)` (so the canary's request share
//!   is the traffic-weighted mix: 11.8 % in the 1 % phase, 15 % in 5 %, …); the window's
//!   `expected_canary` is Σ_seg requests_seg × share_seg;
//! * errors: 1 % on both tracks; latency log-normal, median 20 ms, σ 0.5 (p99 ≈ 64 ms), histogrammed
//!   with the core's log buckets;
//! * a [`Regression`] of the canary from its [`Onset`] on.
//!
//! [`Scenario`] holds the knobs; [`cases`] is the catalogue the report runs.

pub mod cases;
pub(crate) mod dist;
pub(crate) mod users;

/// Segment mix of the simulated traffic.
pub const SEGMENTS: [(&str, f64); 5] = [
    ("internal", 0.05),
    ("beta", 0.05),
    ("premium", 0.10),
    ("enterprise", 0.10),
    ("standard", 0.70),
];

/// What goes wrong with the canary, from the onset on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regression {
    None,
    /// Canary error rate = base × factor.
    ErrorMult(f64),
    /// Canary error rate = this (a crash: 0.5).
    ErrorRate(f64),
    /// Canary latency tail widened so its p99 is `factor ×` stable's (median unchanged).
    TailP99(f64),
    /// Both versions slow down by `factor` (a shared dependency degrades): not the canary's fault, so
    /// any abort it causes is a false abort.
    SharedSlowdown(f64),
}

impl Regression {
    /// The canary's error rate and latency σ once regressed, given the healthy ones. The regressed tail
    /// keeps the median and widens σ so that p99 is `factor ×` stable's: σ' = σ + ln factor / z_0.99.
    pub fn degraded(self, error_rate: f64, sigma: f64) -> (f64, f64) {
        match self {
            Regression::None => (error_rate, sigma),
            Regression::ErrorMult(f) => ((error_rate * f).min(1.0), sigma),
            Regression::ErrorRate(p) => (p, sigma),
            Regression::TailP99(f) => (error_rate, sigma + f.ln() / 2.326_348),
            Regression::SharedSlowdown(_) => (error_rate, sigma),
        }
    }

    /// The median latency once regressed.
    pub fn degraded_median(self, median_ms: f64) -> f64 {
        match self {
            Regression::SharedSlowdown(f) => median_ms * f,
            _ => median_ms,
        }
    }

    /// Whether the regression hits the stable version too.
    pub fn hits_stable(self) -> bool {
        matches!(self, Regression::SharedSlowdown(_))
    }
}

/// When the regression starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Onset {
    /// From the deploy: the canary is bad from its first request.
    Start,
    /// At the beginning of phase `i` (index in the ladder without shadow: 0 = 1 %, 1 = 5 %, …).
    PhaseStart(usize),
    /// In the middle half of phase `i`, at a uniformly random second.
    MidPhase(usize),
    /// In the middle half of a uniformly random phase among 1 % … 50 %.
    MidRandomPhase,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// Mean total request rate (req/s) before burst modulation.
    pub base_rps: f64,
    /// When set, the total rate follows the phase so the canary receives this many req/s on average.
    pub canary_rps: Option<f64>,
    /// Burst modulation of the rate on/off.
    pub bursty: bool,
    pub error_rate: f64,
    pub median_ms: f64,
    pub sigma: f64,
    /// Minimum duration of each phase, seconds.
    pub phase_s: u64,
    pub regression: Regression,
    pub onset: Onset,
    /// Stop (without abort) when the rollout leaves this phase.
    pub stop_after_phase: Option<usize>,
    /// Stop this many seconds after the onset (a bound for hopeless cases).
    pub max_after_onset_s: Option<u64>,
    /// Hard bound on simulated seconds.
    pub max_s: u64,
    pub segments: Vec<(&'static str, f64)>,
    /// Base error rate per segment (same order as `segments`, same on both versions), replacing
    /// `error_rate`; empty: every segment at `error_rate`. Internal users calling admin paths fail
    /// more on every version: a healthy rollout must not be blamed for it.
    pub segment_error_rates: Vec<f64>,
    /// Only this segment's canary regresses (None: every segment's).
    pub regression_segment: Option<&'static str>,
    /// Share of requests without a targeting key (bots, health checks, logged-out users): always on
    /// stable, failing at `keyless_error_rate`.
    pub keyless: f64,
    pub keyless_error_rate: f64,
    /// Whether the filter marks keyless requests as not bucketed (this release). `false`: counted as
    /// ordinary stable requests, as filters did before the mark (shows what the mark fixes).
    pub mark_keyless: bool,
    /// A rare slow mode on both versions: this share of requests (cache misses) is `slow_factor ×` slower.
    pub slow_share: f64,
    pub slow_factor: f64,
    /// 0: the runner builds each second's window itself. n ≥ 1: the second's requests are spread over
    /// n sidecars, each sends its batch (the filter's wire type, `dwcp_core::telemetry::Batch`) to a
    /// real `dwcp_core::ledger::Ledger`, which merges, credits and judges them as the companion does.
    pub sidecars: u32,
    /// Sticky clients that fail every request on every version (a broken integration, a retry loop),
    /// each at `failing_client_rps`, in the last segment (standard), each with its own uniform bucket:
    /// on canary exactly when its bucket falls inside the segment's share.
    pub failing_clients: u32,
    pub failing_client_rps: f64,
    /// Sidecar cases: `users` users with Zipf(`zipf_exponent`) request counts send the keyed requests
    /// (0: every request its own random bucket). With users, the `failing_clients` are users drawn
    /// among the heaviest `failing_pool` (their rate is their Zipf share, not `failing_client_rps`).
    pub users: u32,
    pub zipf_exponent: f64,
    pub failing_pool: u32,
    /// Sidecar cases: the filters' report period (ms; each sidecar at its own offset), and the share of
    /// sidecars that report only every 5 s (loaded nodes).
    pub sync_ms: u64,
    pub slow_sidecars: f64,
}

impl Scenario {
    /// Healthy A/A traffic with the defaults above, 10 min per phase.
    pub fn healthy() -> Self {
        Self {
            base_rps: 200.0,
            canary_rps: None,
            bursty: true,
            error_rate: 0.01,
            median_ms: 20.0,
            sigma: 0.5,
            phase_s: 600,
            regression: Regression::None,
            onset: Onset::Start,
            stop_after_phase: None,
            max_after_onset_s: None,
            max_s: 4 * 3600,
            segments: SEGMENTS.to_vec(),
            segment_error_rates: Vec::new(),
            regression_segment: None,
            keyless: 0.0,
            keyless_error_rate: 0.05,
            mark_keyless: true,
            slow_share: 0.0,
            slow_factor: 1.0,
            sidecars: 0,
            failing_clients: 0,
            failing_client_rps: 1.0,
            users: 0,
            zipf_exponent: 1.0,
            failing_pool: 50,
            sync_ms: 1_000,
            slow_sidecars: 0.0,
        }
    }

    /// Healthy traffic whose segments differ in base error rate (the same on both versions): the
    /// segment mix internal 5 / beta 5 / premium 20 / enterprise 10 / standard 60 % with error rates
    /// 5 / 3 / 0.5 / 1 / 0.1 %.
    pub fn segment_base_rates() -> Self {
        Self {
            segments: vec![
                ("internal", 5.0),
                ("beta", 5.0),
                ("premium", 20.0),
                ("enterprise", 10.0),
                ("standard", 60.0),
            ],
            segment_error_rates: vec![0.05, 0.03, 0.005, 0.01, 0.001],
            ..Self::healthy()
        }
    }

    /// This scenario with `regression` starting at `onset`.
    pub fn with(self, regression: Regression, onset: Onset) -> Self {
        Self {
            regression,
            onset,
            ..self
        }
    }
}
