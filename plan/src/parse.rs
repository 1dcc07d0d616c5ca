//! The plan file (TOML), parsed with unknown fields refused, then validated. Every error names the
//! line and the field (`line 42: rollout "probft".depends_on[0].phase: …`); nothing is half-applied.
//!
//! ```toml
//! [plan]
//! name = "example"
//! start = 2027-01-04T00:00:00Z
//!
//! [[freeze]]
//! name = "quarter close"
//! from = 2027-03-29T00:00:00Z
//! until = 2027-04-05T00:00:00Z
//!
//! [[rollout]]
//! name = "manager"                 # a companion rollout
//! rollback_target = "2m"
//! phases = [
//!   { name = "shadow", hold = "14d" },
//!   { name = "25%", hold = "7d", approve = true, max_error_rate = 0.001, min_canary_requests = 1000 },
//!   { name = "100%" },
//! ]
//!
//! [[rollout]]
//! name = "compression"
//! not_before = 2027-02-01T00:00:00Z
//! depends_on = [{ rollout = "manager", phase = "25%", held = "7d" }]
//! phases = [{ name = "5%", hold = "3d" }, { name = "100%" }]
//! ```

use crate::model::{Criteria, Freeze, Gate, Plan, PlanPhase, PlanRollout};
use crate::time::{datetime_ms, parse_duration};
use serde::Deserialize;
use toml::value::Datetime;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("line {line}: {field}: {message}")]
    Field {
        line: usize,
        field: String,
        message: String,
    },
}

impl PlanError {
    pub fn line(&self) -> usize {
        match self {
            PlanError::Syntax { line, .. } | PlanError::Field { line, .. } => *line,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    plan: Spanned<RawHeader>,
    #[serde(default)]
    freeze: Vec<Spanned<RawFreeze>>,
    #[serde(default)]
    rollout: Vec<Spanned<RawRollout>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    start: Spanned<Datetime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreeze {
    name: String,
    from: Spanned<Datetime>,
    until: Spanned<Datetime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    name: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    not_before: Option<Spanned<Datetime>>,
    #[serde(default)]
    depends_on: Vec<Spanned<RawGate>>,
    phases: Spanned<Vec<Spanned<RawPhase>>>,
    rollback_target: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    rollout: Spanned<String>,
    phase: Spanned<String>,
    #[serde(default)]
    held: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    name: Spanned<String>,
    #[serde(default)]
    hold: Option<Spanned<String>>,
    #[serde(default)]
    approve: bool,
    #[serde(default)]
    min_canary_requests: u64,
    #[serde(default)]
    max_error_rate: Option<Spanned<f64>>,
    #[serde(default)]
    max_p99_ratio: Option<Spanned<f64>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses and validates a plan. `text` is the whole file.
pub fn parse(text: &str) -> Result<Plan, PlanError> {
    let raw: RawPlan = toml::from_str(text).map_err(|e| PlanError::Syntax {
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().to_string(),
    })?;
    let err = |offset: usize, field: String, message: String| PlanError::Field {
        line: line_of(text, offset),
        field,
        message,
    };
    let dt = |v: &Spanned<Datetime>, field: String| {
        datetime_ms(v.get_ref()).map_err(|m| err(v.span().start, field, m))
    };
    let dur = |v: &Spanned<String>, field: String| {
        parse_duration(v.get_ref()).map_err(|m| err(v.span().start, field, m))
    };
    let header = raw.plan.get_ref();
    if header.name.trim().is_empty() {
        return Err(err(
            raw.plan.span().start,
            "plan.name".into(),
            "must not be empty".into(),
        ));
    }
    let start_ms = dt(&header.start, "plan.start".into())?;
    let mut freezes = Vec::new();
    for (i, f) in raw.freeze.iter().enumerate() {
        let fr = f.get_ref();
        let from_ms = dt(&fr.from, format!("freeze[{i}].from"))?;
        let until_ms = dt(&fr.until, format!("freeze[{i}].until"))?;
        if until_ms <= from_ms {
            return Err(err(
                fr.until.span().start,
                format!("freeze[{i}].until"),
                "must be after `from`".into(),
            ));
        }
        freezes.push(Freeze {
            name: fr.name.clone(),
            from_ms,
            until_ms,
        });
    }
    let mut rollouts: Vec<PlanRollout> = Vec::new();
    for (i, r) in raw.rollout.iter().enumerate() {
        let rr = r.get_ref();
        let name = rr.name.get_ref().clone();
        let at = format!("rollout[{i}]");
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(err(
                rr.name.span().start,
                format!("{at}.name"),
                "must be 1-64 characters of [A-Za-z0-9_-]".into(),
            ));
        }
        if rollouts.iter().any(|o| o.name == name) {
            return Err(err(
                rr.name.span().start,
                format!("{at}.name"),
                format!("duplicate rollout {name:?}"),
            ));
        }
        let at = format!("rollout {name:?}");
        let not_before_ms = match &rr.not_before {
            Some(v) => Some(dt(v, format!("{at}.not_before"))?),
            None => None,
        };
        let rollback_target_ms = dur(&rr.rollback_target, format!("{at}.rollback_target"))?;
        if rollback_target_ms == 0 {
            return Err(err(
                rr.rollback_target.span().start,
                format!("{at}.rollback_target"),
                "must be more than 0".into(),
            ));
        }
        if rr.phases.get_ref().is_empty() {
            return Err(err(
                rr.phases.span().start,
                format!("{at}.phases"),
                "needs at least one phase".into(),
            ));
        }
        let mut phases: Vec<PlanPhase> = Vec::new();
        let last = rr.phases.get_ref().len() - 1;
        for (j, p) in rr.phases.get_ref().iter().enumerate() {
            let pr = p.get_ref();
            let f = format!("{at}.phases[{j}]");
            let pname = pr.name.get_ref().clone();
            if pname.is_empty() || phases.iter().any(|q| q.name == pname) {
                return Err(err(
                    pr.name.span().start,
                    format!("{f}.name"),
                    format!("{pname:?} is empty or repeated"),
                ));
            }
            let hold_ms = match &pr.hold {
                Some(h) => dur(h, format!("{f}.hold"))?,
                None if j == last => 0,
                None => {
                    return Err(err(
                        p.span().start,
                        format!("{f}.hold"),
                        "every phase but the last needs a hold time".into(),
                    ))
                }
            };
            if j == last && pr.approve {
                return Err(err(
                    p.span().start,
                    format!("{f}.approve"),
                    "the last phase has no promotion to approve".into(),
                ));
            }
            let ratio = |v: &Option<Spanned<f64>>, what: &str, lo: f64, hi: f64| match v {
                Some(s) if !(lo..=hi).contains(s.get_ref()) => Err(err(
                    s.span().start,
                    format!("{f}.{what}"),
                    format!("must be between {lo} and {hi}"),
                )),
                Some(s) => Ok(Some(*s.get_ref())),
                None => Ok(None),
            };
            let criteria = Criteria {
                min_canary_requests: pr.min_canary_requests,
                max_error_rate: ratio(&pr.max_error_rate, "max_error_rate", 0.0, 1.0)?,
                max_p99_ratio: ratio(&pr.max_p99_ratio, "max_p99_ratio", 1.0, 100.0)?,
            };
            phases.push(PlanPhase {
                name: pname,
                hold_ms,
                approve: pr.approve,
                criteria,
            });
        }
        rollouts.push(PlanRollout {
            title: rr.title.clone().unwrap_or_else(|| name.clone()),
            name,
            not_before_ms,
            depends_on: Vec::new(),
            phases,
            rollback_target_ms,
        });
    }
    // Gates, once every rollout and ladder is known (a gate may point forward in the file).
    for (i, r) in raw.rollout.iter().enumerate() {
        let rr = r.get_ref();
        let at = format!("rollout {:?}", rr.name.get_ref());
        let mut gates = Vec::new();
        for (k, g) in rr.depends_on.iter().enumerate() {
            let gr = g.get_ref();
            let f = format!("{at}.depends_on[{k}]");
            let target = gr.rollout.get_ref();
            let Some(t) = rollouts.iter().find(|o| &o.name == target) else {
                return Err(err(
                    gr.rollout.span().start,
                    format!("{f}.rollout"),
                    format!("no rollout named {target:?} in this plan"),
                ));
            };
            if t.name == *rr.name.get_ref() {
                return Err(err(
                    gr.rollout.span().start,
                    format!("{f}.rollout"),
                    "a rollout cannot wait for itself".into(),
                ));
            }
            if t.phase_index(gr.phase.get_ref()).is_none() {
                let names: Vec<&str> = t.phases.iter().map(|p| p.name.as_str()).collect();
                return Err(err(
                    gr.phase.span().start,
                    format!("{f}.phase"),
                    format!(
                        "{:?} is not a phase of {target:?} (its phases: {names:?})",
                        gr.phase.get_ref()
                    ),
                ));
            }
            let held_ms = match &gr.held {
                Some(h) => dur(h, format!("{f}.held"))?,
                None => 0,
            };
            gates.push(Gate {
                rollout: target.clone(),
                phase: gr.phase.get_ref().clone(),
                held_ms,
            });
        }
        if let Some(dst) = rollouts.get_mut(i) {
            dst.depends_on = gates;
        }
    }
    let plan = Plan {
        name: header.name.clone(),
        start_ms,
        freezes,
        rollouts,
    };
    if let Some((i, cycle)) = find_cycle(&plan) {
        let r = &raw.rollout[i];
        return Err(err(
            r.span().start,
            format!("rollout {:?}.depends_on", r.get_ref().name.get_ref()),
            format!("dependency cycle: {}", cycle.join(" → ")),
        ));
    }
    Ok(plan)
}

/// A rollout on a dependency cycle and the cycle, if any.
fn find_cycle(plan: &Plan) -> Option<(usize, Vec<String>)> {
    fn visit(
        plan: &Plan,
        i: usize,
        path: &mut Vec<usize>,
        done: &mut [bool],
    ) -> Option<Vec<usize>> {
        if let Some(pos) = path.iter().position(|&p| p == i) {
            let mut c = path[pos..].to_vec();
            c.push(i);
            return Some(c);
        }
        if done[i] {
            return None;
        }
        path.push(i);
        for g in &plan.rollouts[i].depends_on {
            if let Some(j) = plan.rollouts.iter().position(|r| r.name == g.rollout) {
                if let Some(c) = visit(plan, j, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done[i] = true;
        None
    }
    let mut done = vec![false; plan.rollouts.len()];
    for i in 0..plan.rollouts.len() {
        if let Some(c) = visit(plan, i, &mut Vec::new(), &mut done) {
            let names = c.iter().map(|&k| plan.rollouts[k].name.clone()).collect();
            return Some((c[0], names));
        }
    }
    None
}
