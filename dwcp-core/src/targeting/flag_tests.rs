//! Flag and flag-file semantics: config errors name their path, resolution follows flagd, and the
//! SPEC §2.2 default segment rule resolves as specified.

use serde_json::{json, Map, Value};

use super::{Context, Flag, FlagSet, FlagState, Reason, TargetingError};

fn flag(def: Value) -> Flag {
    Flag::parse("f", &def, "f").unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(def: Value) -> TargetingError {
    Flag::parse("f", &def, "segments").expect_err("should be rejected")
}

fn attrs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn unknown_operator_is_a_config_error_naming_the_path() {
    let e = parse_err(json!({
        "variants": {"a": 1, "b": 2},
        "targeting": {"if": [true, "a", {"foo": [1]}]}
    }));
    assert_eq!(e.path, "segments.targeting.if[2]");
    assert_eq!(
        e.to_string(),
        "segments.targeting.if[2]: unknown operator \"foo\""
    );

    let nested = parse_err(json!({
        "variants": {"a": 1},
        "targeting": {"if": [{"and": [true, {"==": [1, {"vra": "x"}]}]}, "a"]}
    }));
    assert_eq!(nested.path, "segments.targeting.if[0].and[1].==[1]");
    assert_eq!(nested.message, "unknown operator \"vra\"");
}

#[test]
#[rustfmt::skip]
fn other_config_errors_name_their_field() {
    let cases: &[(Value, &str, &str)] = &[
        (json!([]), "segments", "object"),
        (json!({"variants": {"a": 1}, "defaultVariant": "b"}), "segments.defaultVariant", "not a variant"),
        (json!({"variants": {"a": 1}, "descriptoin": "x"}), "segments.descriptoin", "unknown field"),
        (json!({"variants": {"a": 1}, "state": "ON"}), "segments.state", "ENABLED"),
        (json!({"variants": {}}), "segments.variants", "at least one"),
        (json!({"defaultVariant": "a"}), "segments", "variants"),
        (json!({"variants": {"a": 1}, "targeting": "a"}), "segments.targeting", "JsonLogic"),
        (json!({"variants": {"a": 1}, "targeting": {"if": [{"a": 1, "b": 2}]}}), "segments.targeting.if[0]", "one key"),
        (json!({"variants": {"a": 1}, "targeting": {"var": {"cat": ["a"]}}}), "segments.targeting", "literal"),
        (json!({"variants": {"a": 1}, "targeting": {"var": ""}}), "segments.targeting", "whole context"),
        (json!({"variants": {"a": 1}, "targeting": {"$ref": "x"}}), "segments.targeting", "unknown evaluator"),
    ];
    for (def, path, needle) in cases {
        let e = parse_err(def.clone());
        assert_eq!(&e.path, path, "{def}");
        assert!(e.message.contains(needle), "{def}: {e}");
    }
}

#[test]
fn too_deep_targeting_is_rejected_not_overflowed() {
    let mut t = json!(true);
    for _ in 0..200 {
        t = json!({"!": [t]});
    }
    let e = parse_err(json!({"variants": {"a": 1}, "targeting": t}));
    assert!(e.message.contains("deeper"), "{e}");
}

#[test]
fn flagd_null_shapes_load_with_warnings_and_resolve_default() {
    let f = flag(json!({
        "variants": {"true": 1, "false": 0, "d": -1},
        "defaultVariant": "d",
        "targeting": {"starts_with": ["abc"]}
    }));
    assert_eq!(f.warnings().len(), 1);
    assert_eq!(f.warnings()[0].path, "f.targeting");
    let none = Map::new();
    let res = f.evaluate(&Context::new(None, &none));
    assert_eq!((res.variant, res.reason), (Some("d"), Reason::Default));
}

#[test]
#[rustfmt::skip]
fn resolution_follows_flagd() {
    let none = Map::new();
    let ctx = Context::new(Some("u"), &none);
    let eval = |def: Value| {
        let f = flag(def);
        let r = f.evaluate(&ctx);
        (r.variant.map(str::to_string), r.value.cloned(), r.reason)
    };
    let on_off = json!({"on": true, "off": false});
    type Want = (Option<&'static str>, Option<Value>, Reason);
    let cases: &[(&str, Value, Want)] = &[
        ("disabled", json!({"state": "DISABLED", "variants": on_off, "defaultVariant": "on"}), (None, None, Reason::Disabled)),
        ("static", json!({"variants": on_off, "defaultVariant": "on"}), (Some("on"), Some(json!(true)), Reason::Static)),
        ("empty targeting is static", json!({"variants": on_off, "defaultVariant": "off", "targeting": {}}), (Some("off"), Some(json!(false)), Reason::Static)),
        ("no default, static", json!({"variants": on_off}), (None, None, Reason::Default)),
        ("match", json!({"variants": on_off, "defaultVariant": "off", "targeting": {"if": [true, "on"]}}), (Some("on"), Some(json!(true)), Reason::TargetingMatch)),
        ("match default is still a match", json!({"variants": on_off, "defaultVariant": "off", "targeting": {"if": [true, "off"]}}), (Some("off"), Some(json!(false)), Reason::TargetingMatch)),
        ("null -> default", json!({"variants": on_off, "defaultVariant": "off", "targeting": {"if": [false, "on"]}}), (Some("off"), Some(json!(false)), Reason::Default)),
        ("null, no default", json!({"variants": on_off, "targeting": {"if": [false, "on"]}}), (None, None, Reason::Default)),
        ("unknown variant -> error", json!({"variants": on_off, "defaultVariant": "off", "targeting": {"if": [true, "maybe"]}}), (None, None, Reason::Error)),
        ("array result -> error", json!({"variants": on_off, "defaultVariant": "off", "targeting": {"if": [true, ["on"]]}}), (None, None, Reason::Error)),
        ("bare $flagd is null", json!({"variants": on_off, "defaultVariant": "off", "targeting": {"var": "$flagd"}}), (Some("off"), Some(json!(false)), Reason::Default)),
        ("bool names a variant", json!({"variants": {"true": "yes", "false": "no"}, "targeting": {"==": [1, 1]}}), (Some("true"), Some(json!("yes")), Reason::TargetingMatch)),
        ("number names a variant", json!({"variants": {"1": "one", "2": "two"}, "targeting": {"if": [true, 2]}}), (Some("2"), Some(json!("two")), Reason::TargetingMatch)),
    ];
    for (desc, def, (variant, value, reason)) in cases {
        let got = eval(def.clone());
        assert_eq!(
            got,
            (variant.map(str::to_string), value.clone(), *reason),
            "{desc}"
        );
    }
}

#[test]
fn timestamp_is_an_input() {
    let f = flag(json!({
        "variants": {"past": 1, "future": 2, "none": 0},
        "defaultVariant": "none",
        "targeting": {"if": [
            {">": [{"var": "$flagd.timestamp"}, {"var": "time"}]}, "past",
            {"<": [{"var": "$flagd.timestamp"}, {"var": "time"}]}, "future", "none"]}
    }));
    let a = attrs(json!({"time": 1_700_000_000u64}));
    let ctx = Context::new(None, &a);
    assert_eq!(f.evaluate_at(&ctx, 1_800_000_000).variant, Some("past"));
    assert_eq!(f.evaluate_at(&ctx, 1_600_000_000).variant, Some("future"));
    assert_eq!(f.evaluate_at(&ctx, 1_700_000_000).variant, Some("none"));
    assert_eq!(
        f.evaluate(&ctx).variant,
        Some("future"),
        "no timestamp: null < time, like flagd without one"
    );
}

/// SPEC §2.2: internal (email domain) → beta → premium → enterprise → standard; first match wins.
#[test]
#[rustfmt::skip]
fn default_segment_rule() {
    let segments = flag(json!({
        "state": "ENABLED",
        "variants": {"internal": "internal", "beta": "beta", "premium": "premium",
                     "enterprise": "enterprise", "standard": "standard"},
        "defaultVariant": "standard",
        "targeting": {"if": [
            {"ends_with": [{"var": "email"}, "@company.com"]}, "internal",
            {"==": [{"var": "beta_opt_in"}, true]}, "beta",
            {"==": [{"var": "tier"}, "premium"]}, "premium",
            {"==": [{"var": "tier"}, "enterprise"]}, "enterprise",
            "standard"
        ]}
    }));
    let table = [
        ("employee", json!({"email": "ann@company.com", "tier": "premium", "beta_opt_in": true}), "internal"),
        ("lookalike domain", json!({"email": "ann@company.com.evil.io"}), "standard"),
        ("beta beats tier", json!({"email": "bob@gmail.com", "beta_opt_in": true, "tier": "enterprise"}), "beta"),
        ("beta off", json!({"beta_opt_in": false, "tier": "premium"}), "premium"),
        ("enterprise", json!({"tier": "enterprise"}), "enterprise"),
        ("other tier", json!({"tier": "free"}), "standard"),
        ("no attributes", json!({}), "standard"),
        ("non-string email", json!({"email": 42, "tier": "premium"}), "premium"),
    ];
    for (desc, a, want) in table {
        let a = attrs(a);
        let res = segments.evaluate(&Context::new(Some("user-1"), &a));
        assert_eq!(res.variant, Some(want), "{desc}");
        assert_eq!(res.value, Some(&json!(want)), "{desc}");
        assert_eq!(res.reason, Reason::TargetingMatch, "{desc}");
    }
    assert!(segments.warnings().is_empty());
    assert_eq!(segments.state(), FlagState::Enabled);
}

#[test]
fn flag_set_refs_and_errors() {
    let doc = json!({
        "flags": {
            "b": {"variants": {"hi": 1, "bye": 0}, "defaultVariant": "bye",
                  "targeting": {"if": [{"$ref": "is_staff"}, "hi", "bye"]}},
            "a": {"variants": {"x": 1}, "targeting": {"if": [{"$ref": "missing"}, "x"]}},
            "c": {"variants": {"x": 1}, "defaultVariant": "x"}
        },
        "$evaluators": {
            "is_staff": {"and": [{"$ref": "has_email"}, {"ends_with": [{"var": "email"}, "@company.com"]}]},
            "has_email": {"!!": [{"var": "email"}]}
        }
    });
    let set = FlagSet::parse_lenient(&doc, "file").unwrap();
    assert_eq!(
        set.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    let e = set.error("a").unwrap();
    assert_eq!(e.path, "file.flags.a.targeting.if[0]");
    assert!(e.message.contains("unknown evaluator \"missing\""), "{e}");
    assert!(
        FlagSet::parse(&doc, "file").is_err(),
        "strict parse rejects the file"
    );

    let staff = attrs(json!({"email": "ann@company.com"}));
    let b = set.get("b").unwrap();
    assert_eq!(b.evaluate(&Context::new(None, &staff)).variant, Some("hi"));
    assert_eq!(
        b.evaluate(&Context::new(None, &Map::new())).variant,
        Some("bye")
    );
    assert!(set.get("a").is_none() && set.get("zzz").is_none());
}

#[test]
fn flag_set_rejects_cycles_and_broken_evaluators() {
    let cyclic = json!({
        "flags": {"f": {"variants": {"x": 1}, "targeting": {"if": [{"$ref": "a"}, "x"]}}},
        "$evaluators": {"a": {"!": {"$ref": "b"}}, "b": {"$ref": "a"}}
    });
    let e = FlagSet::parse(&cyclic, "").unwrap_err();
    assert!(e.message.contains("cyclic"), "{e}");

    let broken = json!({
        "flags": {"f": {"variants": {"x": 1}, "targeting": {"if": [{"$ref": "bad"}, "x"]}}},
        "$evaluators": {"bad": {"==": [1, {"nope": []}]}}
    });
    let set = FlagSet::parse_lenient(&broken, "").unwrap();
    let errors: Vec<String> = set.errors().map(ToString::to_string).collect();
    assert_eq!(
        errors[0],
        "$evaluators.bad.==[1]: unknown operator \"nope\""
    );
    assert_eq!(
        errors[1],
        "flags.f.targeting.if[0]: in $ref \"bad\": $evaluators.bad.==[1]: unknown operator \"nope\""
    );
    assert!(
        FlagSet::parse_lenient(&json!({"flag": {}}), "x")
            .unwrap_err()
            .path
            == "x.flag"
    );
}
