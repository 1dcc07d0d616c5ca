//! What one request gets from the filter, decided in one pure function so that the host module only
//! reads and writes host state.
//!
//! [`route`] takes the config, the dynamic state as the VM holds it, its freshness and the request
//! headers, and answers either "not ours" (the request matches no rollout; a client-sent track header
//! must be stripped so that it cannot pick a track) or "routed": the [`Decision`], the headers to set
//! (the track header always, the explanation header when `explain` is on), the shadow plan, and the
//! reason to count. The host applies that answer; it decides nothing.
//!
//! Invariants: the routed decision is exactly [`decide`]'s; the track header is always set by us on a
//! routed request and removed on one that is not ours, so a client value never survives; a shadow copy
//! is planned only for stable traffic of a rollout with a shadow cluster, under a fresh state whose
//! rollout is live with a non-zero shadow share. Routing allocates nothing unless `explain` is on.
//!
//! What counts as an error is defined here once ([`is_error`]), for the request counters and the
//! shadow comparison alike.

use crate::config::FilterConfig;
use crate::decision::{decide, explain, match_rollout, Decision, Freshness, Headers, Track};
use crate::state::DynamicState;

/// The request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'c> {
    /// No rollout owns the request. `strip_track_header`: the client sent our track header; remove it.
    NotOurs {
        strip_track_header: bool,
    },
    Routed(Routed<'c>),
}

/// A request routed by a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<'c> {
    pub decision: Decision,
    /// Name of the header that carries the track (its value: [`Routed::track`]).
    pub track_header: &'c str,
    /// The explanation header (name, value), only when the config turns `explain` on.
    pub explain: Option<(&'c str, String)>,
    /// The shadow copy to try (the mirror still samples and bounds it).
    pub shadow: Option<ShadowPlan<'c>>,
}

impl Routed<'_> {
    /// The value of the track header.
    pub fn track(&self) -> &'static str {
        self.decision.track.as_str()
    }

    /// The decision counter to increment (one per routed request).
    pub fn count(&self) -> &'static str {
        self.decision.why.as_str()
    }
}

/// Where a shadow copy of this request may go, and at what share of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowPlan<'c> {
    pub rollout: &'c str,
    pub cluster: &'c str,
    pub noise_cluster: Option<&'c str>,
    /// Share of eligible requests to copy, basis points (1..=10 000).
    pub bp: u32,
}

/// The answer for a request with `headers` (`:authority` and `:path` among them).
pub fn route<'c, H: Headers + ?Sized>(
    cfg: &'c FilterConfig,
    state: Option<&DynamicState>,
    freshness: Freshness,
    headers: &H,
) -> Route<'c> {
    let track_header = cfg.track_header.as_str();
    let authority = headers.first_str(":authority");
    let path = headers.first_str(":path");
    let Some(rollout) = match_rollout(cfg, authority, path) else {
        return Route::NotOurs {
            strip_track_header: headers.has(track_header),
        };
    };
    let decision = decide(cfg, state, freshness, rollout, headers);
    let explain = cfg
        .explain
        .then(|| (cfg.decision_header.as_str(), explain(cfg, state, &decision)));
    let shadow = shadow_plan(cfg, state, freshness, &decision);
    Route::Routed(Routed {
        decision,
        track_header,
        explain,
        shadow,
    })
}

/// The shadow plan for a request routed by `d`: only answers of stable are compared with the shadow
/// (the version under test), and only under a fresh state in which the rollout is live.
fn shadow_plan<'c>(
    cfg: &'c FilterConfig,
    state: Option<&DynamicState>,
    freshness: Freshness,
    d: &Decision,
) -> Option<ShadowPlan<'c>> {
    if d.track != Track::Stable || freshness != Freshness::Fresh {
        return None;
    }
    let r = cfg.rollouts.get(d.rollout)?;
    let cluster = r.shadow_cluster.as_deref()?;
    let bp = state
        .filter(|s| !s.kill_all)
        .and_then(|s| s.rollouts.get(&r.name))
        .filter(|rs| !rs.killed)
        .map_or(0, |rs| rs.shadow_bp.min(10_000));
    (bp > 0).then_some(ShadowPlan {
        rollout: &r.name,
        cluster,
        noise_cluster: r.noise_cluster.as_deref(),
        bp,
    })
}

/// Whether an answer with HTTP `status` counts as an error. 0 means no response reached the client
/// (reset, client gave up): an error, and under "no difference" as likely on either track, so the
/// sequential test stays valid. 5xx always; 4xx only when the config says so (`count_4xx_as_errors`).
pub fn is_error(status: u16, count_4xx: bool) -> bool {
    status == 0 || status >= 500 || (count_4xx && (400..500).contains(&status))
}

#[cfg(test)]
mod tests;
