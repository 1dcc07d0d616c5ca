//! flagd's `sem_ver` operator: `{"sem_ver": [version, op, target]}`.
//!
//! Semantics follow flagd (Go `golang.org/x/mod/semver`): comparison by SemVer 2.0 precedence with
//! build metadata ignored; `^` means "same major", `~` means "same major and minor" (not the npm
//! ranges). Inputs may carry a leading `v`/`V` and may omit minor/patch (`1` → `1.0.0`,
//! `1.2` → `1.2.0`, without pre-release or build suffixes, as in Go). Numbers in the context are
//! compared as their decimal text (`1.2` → `1.2.0`). Anything unparsable makes the operator yield
//! `null`, never `false`.

use std::cmp::Ordering;

use semver::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SemOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `^`: same major version.
    Caret,
    /// `~`: same major and minor version.
    Tilde,
}

impl SemOp {
    pub(crate) fn parse(s: &str) -> Option<SemOp> {
        Some(match s {
            "=" => SemOp::Eq,
            "!=" => SemOp::Ne,
            "<" => SemOp::Lt,
            "<=" => SemOp::Le,
            ">" => SemOp::Gt,
            ">=" => SemOp::Ge,
            "^" => SemOp::Caret,
            "~" => SemOp::Tilde,
            _ => return None,
        })
    }

    /// Whether `version <op> target` holds.
    pub(crate) fn holds(self, version: &Version, target: &Version) -> bool {
        let ord = version.cmp_precedence(target);
        match self {
            SemOp::Eq => ord == Ordering::Equal,
            SemOp::Ne => ord != Ordering::Equal,
            SemOp::Lt => ord == Ordering::Less,
            SemOp::Le => ord != Ordering::Greater,
            SemOp::Gt => ord == Ordering::Greater,
            SemOp::Ge => ord != Ordering::Less,
            SemOp::Caret => version.major == target.major,
            SemOp::Tilde => version.major == target.major && version.minor == target.minor,
        }
    }
}

/// Parses a version the way flagd does (see the module docs). Allocates only for short forms.
pub(crate) fn parse_version(text: &str) -> Option<Version> {
    let t = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let core_end = t.find(['-', '+']).unwrap_or(t.len());
    match t.get(..core_end)?.bytes().filter(|b| *b == b'.').count() {
        2 => Version::parse(t).ok(),
        // Go accepts `v1` and `v1.2` only without suffixes.
        0 if core_end == t.len() => Version::parse(&format!("{t}.0.0")).ok(),
        1 if core_end == t.len() => Version::parse(&format!("{t}.0")).ok(),
        _ => None,
    }
}
