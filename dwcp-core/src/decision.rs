//! The per-request decision: identify the user, resolve the segment, bucket stickily, pick
//! the track. Pure and total: every input, however malformed, yields a decision; anything doubtful
//! yields `stable` with the reason recorded.

use crate::bucket::{bucket_bp, in_canary};
use crate::config::{AttrType, FilterConfig};
use crate::state::DynamicState;
use crate::targeting::{Attr, AttrView};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Stable,
    Canary,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
        }
    }
    pub fn index(self) -> usize {
        match self {
            Track::Stable => 0,
            Track::Canary => 1,
        }
    }
}

/// Why the request got its track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Bucketed against the segment's current canary share.
    Bucketed,
    /// No dynamic state has ever arrived.
    NoState,
    /// The dynamic state is older than the staleness bound.
    Stale,
    KillAll,
    /// The rollout is killed, or absent from the dynamic state.
    RolloutOff,
    /// No targeting key: not sticky, so stable.
    NoKey,
    /// A targeting header was oversized, non-UTF-8 or duplicated with different values.
    BadHeader,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Bucketed => "bucketed",
            Why::NoState => "no_state",
            Why::Stale => "stale",
            Why::KillAll => "kill_all",
            Why::RolloutOff => "rollout_off",
            Why::NoKey => "no_key",
            Why::BadHeader => "bad_header",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub rollout: usize,
    pub segment: usize,
    pub track: Track,
    pub bucket: Option<u32>,
    pub why: Why,
}

/// Freshness of the dynamic state as the filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
    Never,
}

/// Read-only view of request headers (lowercase names; values as raw bytes, possibly not UTF-8).
/// Lookups borrow: the per-request path reads the host's header list in place.
pub trait Headers {
    /// Every value of the header `name`, in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of `name` as text ("" when absent or not UTF-8).
    fn first_str<'a>(&'a self, name: &'a str) -> &'a str {
        self.values(name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("")
    }

    /// Whether the header `name` is present at all.
    fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }
}

impl Headers for [(String, Vec<u8>)] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

impl Headers for [(&str, &[u8])] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// A header value: absent/empty, usable, or bad.
enum HeaderValue<'a> {
    Absent,
    Ok(&'a str),
    Bad,
}

fn header_value<'a, H: Headers + ?Sized>(h: &'a H, name: &'a str, max: usize) -> HeaderValue<'a> {
    let mut vals = h.values(name);
    let Some(first) = vals.next() else {
        return HeaderValue::Absent;
    };
    if vals.any(|v| v != first) {
        return HeaderValue::Bad;
    }
    if first.len() > max {
        return HeaderValue::Bad;
    }
    match std::str::from_utf8(first) {
        Ok(s) if s.trim().is_empty() => HeaderValue::Absent,
        Ok(s) => HeaderValue::Ok(s.trim()),
        Err(_) => HeaderValue::Bad,
    }
}

/// Index of the rollout owning `authority` + `path`, first match in config order.
pub fn match_rollout(cfg: &FilterConfig, authority: &str, path: &str) -> Option<usize> {
    cfg.rollouts.iter().position(|r| r.matches(authority, path))
}

/// The targeting attributes of a request, read from its headers when the segment rules ask for them
/// (no map is built; a bad header reads as absent, and is reported by [`resolve_segment`]).
struct HeaderAttrs<'a, H: ?Sized> {
    cfg: &'a FilterConfig,
    headers: &'a H,
}

impl<H: Headers + ?Sized> AttrView for HeaderAttrs<'_, H> {
    fn attr(&self, name: &str) -> Option<Attr<'_>> {
        let (_, header, ty) = self.cfg.attributes.iter().find(|(n, _, _)| n == name)?;
        match header_value(self.headers, header, self.cfg.max_header_bytes) {
            HeaderValue::Ok(s) => Some(match ty {
                AttrType::String => Attr::Str(s),
                AttrType::Bool => Attr::Bool(s.eq_ignore_ascii_case("true") || s == "1"),
            }),
            HeaderValue::Absent | HeaderValue::Bad => None,
        }
    }
}

/// Resolves the segment of the request (index into `cfg.segments`), whether a targeting header was
/// bad, and the targeting key (borrowed from the headers).
pub fn resolve_segment<'h, H: Headers + ?Sized>(
    cfg: &'h FilterConfig,
    headers: &'h H,
) -> (usize, bool, Option<&'h str>) {
    let mut bad = cfg.attributes.iter().any(|(_, header, _)| {
        matches!(
            header_value(headers, header, cfg.max_header_bytes),
            HeaderValue::Bad
        )
    });
    let key = match header_value(headers, &cfg.targeting_key_header, cfg.max_header_bytes) {
        HeaderValue::Ok(s) => Some(s),
        HeaderValue::Bad => {
            bad = true;
            None
        }
        HeaderValue::Absent => None,
    };
    let attrs = HeaderAttrs { cfg, headers };
    let res = cfg.segment_flag.evaluate_view(key, &attrs);
    let seg = res
        .variant
        .and_then(|v| cfg.segment_index(v))
        .or_else(|| cfg.segment_index("standard"))
        .unwrap_or(0);
    (seg, bad, key)
}

/// The decision for a request already matched to rollout `rollout`.
pub fn decide<H: Headers + ?Sized>(
    cfg: &FilterConfig,
    state: Option<&DynamicState>,
    freshness: Freshness,
    rollout: usize,
    headers: &H,
) -> Decision {
    let (segment, bad, key) = resolve_segment(cfg, headers);
    let stable = |why| Decision {
        rollout,
        segment,
        track: Track::Stable,
        bucket: None,
        why,
    };
    let state = match (freshness, state) {
        (Freshness::Never, _) | (_, None) => return stable(Why::NoState),
        (Freshness::Stale, _) => return stable(Why::Stale),
        (Freshness::Fresh, Some(s)) => s,
    };
    if state.kill_all {
        return stable(Why::KillAll);
    }
    let Some(r) = cfg.rollouts.get(rollout) else {
        return stable(Why::RolloutOff);
    };
    let Some(rs) = state.rollouts.get(&r.name) else {
        return stable(Why::RolloutOff);
    };
    if rs.killed {
        return stable(Why::RolloutOff);
    }
    if bad {
        return stable(Why::BadHeader);
    }
    let Some(key) = key else {
        return stable(Why::NoKey);
    };
    let seg_name = cfg.segments.get(segment).map(String::as_str).unwrap_or("");
    let bucket = bucket_bp(&r.name, key);
    let track = if in_canary(bucket, rs.canary_bp(seg_name)) {
        Track::Canary
    } else {
        Track::Stable
    };
    Decision {
        rollout,
        segment,
        track,
        bucket: Some(bucket),
        why: Why::Bucketed,
    }
}

/// The explanation header value: `rollout=…;segment=…;bucket=…;phase=…;rule=…`.
pub fn explain(cfg: &FilterConfig, state: Option<&DynamicState>, d: &Decision) -> String {
    let rollout = cfg
        .rollouts
        .get(d.rollout)
        .map(|r| r.name.as_str())
        .unwrap_or("");
    let phase = state
        .and_then(|s| s.rollouts.get(rollout))
        .map(|r| r.phase.as_str())
        .unwrap_or("none");
    let segment = cfg
        .segments
        .get(d.segment)
        .map(String::as_str)
        .unwrap_or("");
    let bucket = d
        .bucket
        .map_or_else(|| "none".to_string(), |b| b.to_string());
    format!(
        "rollout={rollout};segment={segment};bucket={bucket};phase={phase};rule={};track={}",
        d.why.as_str(),
        d.track.as_str()
    )
}

#[cfg(test)]
mod tests;
