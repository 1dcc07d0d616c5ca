//! A rollout's definition: the phase ladder, the segment policy and the guardrails (SPEC.md 3 and 4).
//! Every number is configuration; [`RolloutSpec::default_for`] gives the defaults of the spec.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// `shadow`, `1%`, … — shown to people and echoed in the decision header.
    pub name: String,
    /// Canary share of the `standard` segment, basis points.
    pub canary_bp: u32,
    /// Mirror traffic to the shadow cluster in this phase.
    #[serde(default)]
    pub shadow: bool,
    /// In a live (non-shadow) phase: share of stable's eligible requests still mirrored to the shadow
    /// cluster, basis points (0: none). Mismatches and shadow errors stay judged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shadow_sample_bp: u32,
    pub min_duration_ms: u64,
    /// Minimum requests per track (shadow phase: shadow comparisons) before promotion.
    pub min_requests: u64,
}

/// How a segment's canary share follows the phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum SegmentPolicy {
    /// The phase's share.
    Phase,
    /// Everyone, once the rollout is live (past shadow).
    All,
    /// `max(floor_bp, phase)` once live.
    AtLeast { floor_bp: u32 },
    /// `min(phase, cap_bp)` until the phase reaches `until_bp`, then the phase.
    CappedUntil { cap_bp: u32, until_bp: u32 },
}

impl SegmentPolicy {
    pub fn share_bp(self, phase_bp: u32) -> u32 {
        if phase_bp == 0 {
            return 0;
        }
        match self {
            SegmentPolicy::Phase => phase_bp,
            SegmentPolicy::All => 10_000,
            SegmentPolicy::AtLeast { floor_bp } => phase_bp.max(floor_bp),
            SegmentPolicy::CappedUntil { cap_bp, until_bp } => {
                if phase_bp >= until_bp {
                    phase_bp
                } else {
                    phase_bp.min(cap_bp)
                }
            }
        }
        .min(10_000)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guardrails {
    /// Overall false-abort budget of the rollout, spent across the sequential tests (union bound).
    pub alpha: f64,
    /// Trigger 1: canary error rate above this multiple of stable's (with the sequential test agreeing).
    pub error_ratio: f64,
    /// Trigger 2: canary p99 above this multiple of stable's p99.
    pub p99_ratio: f64,
    /// Trigger 3: canary success rate below this.
    pub min_success: f64,
    /// Trigger 4: observed canary requests below this fraction of the expected share.
    pub min_throughput_ratio: f64,
    /// Minimum canary requests in the phase before triggers 2–4 are evaluated.
    pub min_canary_requests: u64,
    /// Minimum stable requests before stable's p99 is trusted as the latency reference.
    pub min_stable_for_p99: u64,
    /// A canary request is "slow" above `max(latency_tolerance × p99, p99 + latency_floor_ms)` of
    /// stable's p99: differences below the floor are scheduling jitter, not regressions.
    pub latency_tolerance: f64,
    pub latency_floor_ms: f64,
    /// Trigger 8: more than this many breaker opens in `storm_window_ms`.
    pub storm_opens: u32,
    pub storm_window_ms: u64,
    /// Trigger 7: memory above this fraction of the budget continuously for `memory_window_ms`.
    pub memory_fraction: f64,
    pub memory_window_ms: u64,
    /// Shadow phase: mismatch rate above noise that fails the phase.
    pub max_mismatch_rate: f64,
    /// Shadow phase: latency delta (ms, p99 of shadow − primary) that fails the phase.
    pub max_shadow_latency_delta_ms: f64,
}

impl Default for Guardrails {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            error_ratio: 1.5,
            p99_ratio: 2.0,
            min_success: 0.95,
            min_throughput_ratio: 0.8,
            min_canary_requests: 200,
            min_stable_for_p99: 1_000,
            latency_tolerance: 1.1,
            latency_floor_ms: 5.0,
            storm_opens: 10,
            storm_window_ms: 300_000,
            memory_fraction: 0.95,
            memory_window_ms: 300_000,
            max_mismatch_rate: 0.01,
            max_shadow_latency_delta_ms: 50.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    pub name: String,
    pub phases: Vec<Phase>,
    pub segments: BTreeMap<String, SegmentPolicy>,
    pub guardrails: Guardrails,
}

impl RolloutSpec {
    /// The ladder of SPEC.md 3: shadow → 1 → 5 → 10 → 25 → 50 → 100 %, 10 min each.
    pub fn default_phases(min_duration_ms: u64) -> Vec<Phase> {
        let ladder = [
            ("shadow", 0u32, true, 1_000u64),
            ("1%", 100, false, 1_000),
            ("5%", 500, false, 1_000),
            ("10%", 1_000, false, 2_000),
            ("25%", 2_500, false, 5_000),
            ("50%", 5_000, false, 10_000),
            ("100%", 10_000, false, 0),
        ];
        ladder
            .iter()
            .map(|(n, bp, sh, min)| Phase {
                name: n.to_string(),
                canary_bp: *bp,
                shadow: *sh,
                min_duration_ms: if *bp == 10_000 { 0 } else { min_duration_ms },
                min_requests: *min,
                shadow_sample_bp: 0,
            })
            .collect()
    }

    /// Segment policy of SPEC.md 3.
    pub fn default_segments() -> BTreeMap<String, SegmentPolicy> {
        [
            ("internal", SegmentPolicy::All),
            ("beta", SegmentPolicy::All),
            ("premium", SegmentPolicy::AtLeast { floor_bp: 1_000 }),
            (
                "enterprise",
                SegmentPolicy::CappedUntil {
                    cap_bp: 500,
                    until_bp: 5_000,
                },
            ),
            ("standard", SegmentPolicy::Phase),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn default_for(name: &str) -> Self {
        Self {
            name: name.to_string(),
            phases: Self::default_phases(600_000),
            segments: Self::default_segments(),
            guardrails: Guardrails::default(),
        }
    }

    /// Canary share per segment at phase `idx`.
    pub fn shares(&self, idx: usize) -> BTreeMap<String, u32> {
        let bp = self.phases.get(idx).map_or(0, |p| p.canary_bp);
        self.segments
            .iter()
            .map(|(s, p)| (s.clone(), p.share_bp(bp)))
            .collect()
    }

    /// Checks the spec; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        if self.phases.is_empty() {
            return err("phases", "at least one phase is required");
        }
        let mut last = 0;
        for (i, p) in self.phases.iter().enumerate() {
            if p.shadow_sample_bp > 10_000 {
                return err(
                    &format!("phases[{i}].shadow_sample_bp"),
                    "must be at most 10000",
                );
            }
            if p.canary_bp > 10_000 {
                return err(&format!("phases[{i}].canary_bp"), "must be at most 10000");
            }
            if p.canary_bp < last {
                return err(
                    &format!("phases[{i}].canary_bp"),
                    "phases must not decrease",
                );
            }
            last = p.canary_bp;
        }
        let g = &self.guardrails;
        if !(g.alpha > 0.0 && g.alpha < 0.5) {
            return err("guardrails.alpha", "must be in (0, 0.5)");
        }
        // NaN fails too: it is not >= 1.
        let at_least_one = |x: f64| x >= 1.0;
        if !at_least_one(g.error_ratio)
            || !at_least_one(g.p99_ratio)
            || !at_least_one(g.latency_tolerance)
        {
            return err(
                "guardrails",
                "error_ratio, p99_ratio and latency_tolerance must be >= 1",
            );
        }
        if !(0.0..=1.0).contains(&g.min_success) || !(0.0..=1.0).contains(&g.min_throughput_ratio) {
            return err(
                "guardrails",
                "min_success and min_throughput_ratio must be in [0, 1]",
            );
        }
        if !(0.0..=1.0).contains(&g.memory_fraction) || !(0.0..=1.0).contains(&g.max_mismatch_rate)
        {
            return err(
                "guardrails",
                "memory_fraction and max_mismatch_rate must be in [0, 1]",
            );
        }
        Ok(())
    }
}
