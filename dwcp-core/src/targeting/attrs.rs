//! Where an evaluation reads attributes from: a JSON object (SDK-style contexts, the conformance
//! suites) or an [`AttrView`] read in place (the filter's request headers), so that the per-request
//! path builds no map. Both give the same values for the same top-level scalars.

use serde_json::{Map, Value};

use super::eval::Val;
use super::AttrView;

/// Where the attributes come from: a JSON object (SDK-style contexts, conformance suites) or a view
/// read in place (the filter's request headers), so the per-request path builds no map.
#[derive(Clone, Copy)]
pub(crate) enum Attrs<'a> {
    Json(&'a Map<String, Value>),
    View(&'a (dyn AttrView + 'a)),
}

impl<'a> Attrs<'a> {
    /// The attribute at the dotted `path`; a view holds scalars only, so longer paths find nothing.
    pub(super) fn get(self, path: &[String]) -> Val<'a> {
        match self {
            Attrs::Json(m) => walk(m, path).map_or(Val::Null, Val::from_json),
            Attrs::View(v) => match path {
                [name] => v.attr(name).map_or(Val::Null, Val::from_attr),
                _ => Val::Null,
            },
        }
    }

    pub(super) fn top(self, name: &str) -> Val<'a> {
        match self {
            Attrs::Json(m) => m.get(name).map_or(Val::Null, Val::from_json),
            Attrs::View(v) => v.attr(name).map_or(Val::Null, Val::from_attr),
        }
    }
}

/// Follows a dotted path through objects (by key) and arrays (by index).
fn walk<'a>(attrs: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut cur = attrs.get(first)?;
    for seg in rest {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}
