//! Operator tables: each row is a JsonLogic expression, a context and the expected result.

use serde_json::{json, Map, Value};

use super::eval::{eval, Attrs, Env, Val};
use super::parse::{Compiler, Refs};
use super::{Attr, AttrView};

/// Evaluation result as JSON (numbers as f64), for comparison with the tables.
fn to_json(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => json!(*n),
        Val::Str(s) => Value::String(s.to_string()),
        Val::Json(j) => (*j).clone(),
        Val::List(l) => Value::Array(l.iter().map(to_json).collect()),
    }
}

fn normalize(v: Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        other => other,
    }
}

/// Compiles `expr` and evaluates it against `attrs` (targeting key "user-1", flag "flag", time 100).
fn run(expr: &Value, attrs: &Value) -> Value {
    let mut warnings = Vec::new();
    let node = Compiler::new(Refs::NONE, &mut warnings)
        .compile(expr, "t")
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    let empty = Map::new();
    let map = attrs.as_object().unwrap_or(&empty);
    let env = Env {
        attrs: Attrs::Json(map),
        targeting_key: Some("user-1"),
        flag_key: "flag",
        timestamp: Some(100),
    };
    let got = to_json(&eval(&node, &env));
    // The same attributes read in place (as the filter reads headers) give the same result.
    if map.values().all(|v| v.is_string() || v.is_boolean()) {
        let view = FlatView(map);
        let env = Env {
            attrs: Attrs::View(&view),
            ..env
        };
        assert_eq!(
            to_json(&eval(&node, &env)),
            got,
            "{expr} over a view of {attrs}"
        );
    }
    got
}

/// An [`AttrView`] over a flat JSON object of strings and booleans.
struct FlatView<'a>(&'a Map<String, Value>);

impl AttrView for FlatView<'_> {
    fn attr(&self, name: &str) -> Option<Attr<'_>> {
        match self.0.get(name)? {
            Value::String(s) => Some(Attr::Str(s)),
            Value::Bool(b) => Some(Attr::Bool(*b)),
            _ => None,
        }
    }
}

fn check(table: &[(&str, Value, Value, Value)]) {
    for (desc, expr, attrs, want) in table {
        let got = run(expr, attrs);
        assert_eq!(got, normalize(want.clone()), "{desc}: {expr} with {attrs}");
    }
}

#[test]
#[rustfmt::skip]
fn logic_and_equality() {
    let none = json!({});
    check(&[
        ("if then", json!({"if": [true, "a", "b"]}), none.clone(), json!("a")),
        ("if else", json!({"if": [false, "a", "b"]}), none.clone(), json!("b")),
        ("if chain", json!({"if": [false, "a", 1, "b", "c"]}), none.clone(), json!("b")),
        ("if without else", json!({"if": [false, "a"]}), none.clone(), Value::Null),
        ("if empty", json!({"if": []}), none.clone(), Value::Null),
        ("?: alias", json!({"?:": [0, "a", "b"]}), none.clone(), json!("b")),
        ("== coerces", json!({"==": [1, "1"]}), none.clone(), json!(true)),
        ("== bool/number", json!({"==": [true, 1]}), none.clone(), json!(true)),
        ("== null/null", json!({"==": [null, null]}), none.clone(), json!(true)),
        ("== 0/null", json!({"==": [0, null]}), none.clone(), json!(false)),
        ("== 'true'/true is false (JS)", json!({"==": ["true", true]}), none.clone(), json!(false)),
        ("== var", json!({"==": [{"var": "tier"}, "premium"]}), json!({"tier": "premium"}), json!(true)),
        ("== missing var", json!({"==": [{"var": "tier"}, "premium"]}), none.clone(), json!(false)),
        ("!=", json!({"!=": ["a", "b"]}), none.clone(), json!(true)),
        ("=== strict", json!({"===": [1, "1"]}), none.clone(), json!(false)),
        ("!== strict", json!({"!==": [1, "1"]}), none.clone(), json!(true)),
        ("! array arg", json!({"!": [[]]}), none.clone(), json!(true)),
        ("! single arg", json!({"!": true}), none.clone(), json!(false)),
        ("!! non-empty string", json!({"!!": ["0"]}), none.clone(), json!(true)),
        ("and returns last", json!({"and": [true, "x"]}), none.clone(), json!("x")),
        ("and returns first falsy", json!({"and": [true, 0, "x"]}), none.clone(), json!(0)),
        ("or returns first truthy", json!({"or": [false, "", null, "y"]}), none.clone(), json!("y")),
        ("or returns last", json!({"or": [false, 0]}), none.clone(), json!(0)),
        ("< numbers", json!({"<": [1, 2]}), none.clone(), json!(true)),
        ("< between", json!({"<": [1, 2, 3]}), none.clone(), json!(true)),
        ("< between open", json!({"<": [1, 1, 3]}), none.clone(), json!(false)),
        ("<= between closed", json!({"<=": [1, 1, 3]}), none.clone(), json!(true)),
        ("> strings", json!({">": ["b", "a"]}), none.clone(), json!(true)),
        (">= coerces", json!({">=": ["10", 9]}), none.clone(), json!(true)),
        ("< NaN", json!({"<": ["x", 1]}), none.clone(), json!(false)),
    ]);
}

#[test]
#[rustfmt::skip]
fn strings_membership_and_vars() {
    let none = json!({});
    let user =
        json!({"user": {"name": "jo", "roles": ["a", "b"]}, "email": "jo@company.com", "n": 5});
    check(&[
        ("in substring", json!({"in": ["Spring", "Springfield"]}), none.clone(), json!(true)),
        ("in array", json!({"in": ["x", ["a", "x"]]}), none.clone(), json!(true)),
        ("in array is strict", json!({"in": [1, ["1"]]}), none.clone(), json!(false)),
        ("in null", json!({"in": ["a", null]}), none.clone(), json!(false)),
        ("missing needle not in string", json!({"in": [{"var": "nope"}, "abc"]}), none.clone(), json!(false)),
        ("number needle in string", json!({"in": [1, "a1b"]}), none.clone(), json!(true)),
        ("in var array", json!({"in": ["b", {"var": "user.roles"}]}), user.clone(), json!(true)),
        ("in built list", json!({"in": ["jo", [{"var": "user.name"}, "x"]]}), user.clone(), json!(true)),
        ("starts_with", json!({"starts_with": [{"var": "email"}, "jo@"]}), user.clone(), json!(true)),
        ("ends_with", json!({"ends_with": [{"var": "email"}, "@company.com"]}), user.clone(), json!(true)),
        ("ends_with miss", json!({"ends_with": [{"var": "email"}, "@other.com"]}), user.clone(), json!(false)),
        ("starts_with non-string is null", json!({"starts_with": [{"var": "n"}, "5"]}), user.clone(), Value::Null),
        ("ends_with missing is null", json!({"ends_with": [{"var": "nope"}, "x"]}), user.clone(), Value::Null),
        ("cat", json!({"cat": ["a", 1, true, null, 1.5]}), none.clone(), json!("a1true1.5")),
        ("var dotted", json!({"var": "user.name"}), user.clone(), json!("jo")),
        ("var array index", json!({"var": "user.roles.1"}), user.clone(), json!("b")),
        ("var array form", json!({"var": ["email"]}), user.clone(), json!("jo@company.com")),
        ("var default", json!({"var": ["missing", "dflt"]}), user.clone(), json!("dflt")),
        ("var default expr", json!({"var": ["missing", {"cat": ["a", "b"]}]}), user.clone(), json!("ab")),
        ("var missing", json!({"var": "user.name.first"}), user.clone(), Value::Null),
        ("targetingKey", json!({"var": "targetingKey"}), none.clone(), json!("user-1")),
        ("$flagd.flagKey", json!({"var": "$flagd.flagKey"}), none.clone(), json!("flag")),
        ("$flagd.timestamp", json!({"var": "$flagd.timestamp"}), none.clone(), json!(100)),
        ("$flagd.other", json!({"var": "$flagd.other"}), none.clone(), Value::Null),
        ("$flagd is not user data", json!({"var": "$flagd.flagKey"}), json!({"$flagd": {"flagKey": "x"}}), json!("flag")),
        ("timestamp compare", json!({">=": [{"var": "$flagd.timestamp"}, 100]}), none.clone(), json!(true)),
    ]);
}

#[test]
#[rustfmt::skip]
fn sem_ver_table() {
    let rows: &[(&str, &str, &str, Option<bool>)] = &[
        ("1.2.3", "=", "1.2.3", Some(true)),
        ("v1.2.3", "=", "1.2.3", Some(true)),
        ("V1.2.3", "=", "v1.2.3", Some(true)),
        ("1.2", "=", "1.2.0", Some(true)),
        ("1", "=", "1.0.0", Some(true)),
        ("1.2.3-rc.1", "<", "1.2.3", Some(true)),
        ("1.2.3+b1", "=", "1.2.3+b2", Some(true)),
        ("1.0.0", "!=", "1.0.1", Some(true)),
        ("1.10.0", ">", "1.9.0", Some(true)),
        ("1.9.0", ">=", "1.9.0", Some(true)),
        ("1.9.0", "<=", "1.8.9", Some(false)),
        ("2.9.1", "^", "2.0.0", Some(true)),
        ("3.0.0", "^", "2.0.0", Some(false)),
        ("2.1.9", "~", "2.1.0", Some(true)),
        ("2.2.0", "~", "2.1.0", Some(false)),
        ("banana", "=", "1.0.0", None),
        ("1.2-rc.1", "=", "1.2.0", None),
        ("1.2.3.4", "=", "1.2.3", None),
    ];
    for (version, op, target, want) in rows {
        let got = run(
            &json!({"sem_ver": [{"var": "v"}, op, target]}),
            &json!({"v": version}),
        );
        assert_eq!(
            got,
            want.map_or(Value::Null, Value::Bool),
            "{version} {op} {target}"
        );
    }
    let dynamic = json!({"sem_ver": [{"var": "v"}, {"var": "op"}, {"var": "t"}]});
    assert_eq!(
        run(&dynamic, &json!({"v": "2.0.0", "op": ">", "t": "1.5"})),
        json!(true)
    );
    assert_eq!(
        run(&dynamic, &json!({"v": "2.0.0", "op": "===", "t": "1.5"})),
        Value::Null
    );
    assert_eq!(
        run(&dynamic, &json!({"v": 2, "op": ">=", "t": 1.5})),
        json!(true),
        "numbers by their text"
    );
}

#[test]
#[rustfmt::skip]
fn fractional_table() {
    let none = json!({});
    let by_name = |name: &str| json!({"user": {"name": name}});
    let cards = json!({"fractional": [
        {"cat": ["shared-seed", {"var": "user.name"}]},
        ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]
    ]});
    check(&[
        // flagd-testbed v2 vectors (fractional.feature, shared seed).
        ("seed seven", cards.clone(), by_name("seven"), json!("hearts")),
        ("seed eight", cards.clone(), by_name("eight"), json!("diamonds")),
        ("seed nine", cards.clone(), by_name("nine"), json!("clubs")),
        ("seed two", cards.clone(), by_name("two"), json!("spades")),
        // Hash boundary vectors (fractional.feature "hash edge cases").
        ("edge ejOoVL", json!({"fractional": ["ejOoVL", ["lower", 50], ["upper", 50]]}), none.clone(), json!("lower")),
        ("edge bY9fO-", json!({"fractional": ["bY9fO-", ["lower", 50], ["upper", 50]]}), none.clone(), json!("lower")),
        ("edge SI7p-", json!({"fractional": ["SI7p-", ["lower", 50], ["upper", 50]]}), none.clone(), json!("lower")),
        ("edge 6LvT0", json!({"fractional": ["6LvT0", ["lower", 50], ["upper", 50]]}), none.clone(), json!("upper")),
        ("edge ceQdGm", json!({"fractional": ["ceQdGm", ["lower", 50], ["upper", 50]]}), none.clone(), json!("upper")),
        ("single bucket", json!({"fractional": [["only", 1]]}), none.clone(), json!("only")),
        ("shorthand weight 1", json!({"fractional": [["only"]]}), none.clone(), json!("only")),
        ("all-zero weights", json!({"fractional": [["a", 0], ["b", 0]]}), none.clone(), Value::Null),
        ("negative clamped", json!({"fractional": [["a", -50], ["b", 100]]}), none.clone(), json!("b")),
        ("non-string key", json!({"fractional": [{"var": "n"}, ["a", 1]]}), json!({"n": 3}), Value::Null),
        ("null key -> targeting key", json!({"fractional": [{"var": "none"}, ["a", 1]]}), none.clone(), json!("a")),
        ("weight from expr", json!({"fractional": [["a", {"var": "w"}], ["b", 0]]}), json!({"w": 3}), json!("a")),
        ("fractional weight is null", json!({"fractional": [["a", {"var": "w"}]]}), json!({"w": 2.5}), Value::Null),
        ("too heavy", json!({"fractional": [["a", 2147483647], ["b", 1]]}), none.clone(), Value::Null),
        ("variant is expression", json!({"fractional": [[{"cat": ["x", "y"]}, 1]]}), none.clone(), json!("xy")),
        ("bool variants", json!({"fractional": [[false, 0], [true, 100]]}), none.clone(), json!(true)),
    ]);
}

#[test]
fn fractional_without_targeting_key_is_null() {
    let mut warnings = Vec::new();
    let node = Compiler::new(Refs::NONE, &mut warnings)
        .compile(&json!({"fractional": [["a", 1]]}), "t")
        .unwrap();
    let attrs = Map::new();
    for tk in [None, Some("")] {
        let env = Env {
            attrs: Attrs::Json(&attrs),
            targeting_key: tk,
            flag_key: "f",
            timestamp: None,
        };
        assert_eq!(eval(&node, &env), Val::Null, "{tk:?}");
    }
}

mod prop {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use crate::bucket::{bucket_bp, in_canary, FULL_BP};
    use crate::targeting::{Context, Flag, Reason};

    fn rollout(canary_bp: u32) -> Flag {
        let def = json!({
            "variants": {"canary": "canary", "stable": "stable"},
            "defaultVariant": "stable",
            "targeting": {"fractional": [["canary", canary_bp], ["stable", FULL_BP - canary_bp]]}
        });
        Flag::parse("checkout", &def, "rollout").unwrap()
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,12}".prop_map(Value::String),
        ]
    }

    proptest! {
        /// The targeting `fractional` and the filter's `bucket` module put every user in the same
        /// place, so an OpenFeature SDK reading the same flag agrees with the sidecar.
        #[test]
        fn fractional_agrees_with_bucket(user in ".{0,40}", canary_bp in 0u32..=FULL_BP) {
            prop_assume!(!user.is_empty());
            let flag = rollout(canary_bp);
            let attrs = Map::new();
            let res = flag.evaluate(&Context { targeting_key: Some(&user), attrs: &attrs });
            let want = if in_canary(bucket_bp("checkout", &user), canary_bp) { "canary" } else { "stable" };
            prop_assert_eq!(res.variant, Some(want));
            prop_assert_eq!(res.reason, Reason::TargetingMatch);
        }

        /// Evaluation is total: any attribute values, any types, never a panic.
        #[test]
        fn evaluation_is_total(email in scalar(), tier in scalar(), version in scalar(), name in scalar()) {
            let def = json!({
                "variants": {"a": 1, "b": 2, "true": 3, "false": 4},
                "defaultVariant": "a",
                "targeting": {"if": [
                    {"or": [{"ends_with": [{"var": "email"}, "@x"]}, {"in": [{"var": "tier"}, ["p", 1]]}]}, "b",
                    {"sem_ver": [{"var": "version"}, ">=", "1.2"]}, {"var": ["tier", "a"]},
                    {"fractional": [{"cat": [{"var": "name"}, {"var": "$flagd.timestamp"}]}, ["a", 1], [{"var": "tier"}, 1]]}
                ]}
            });
            let flag = Flag::parse("f", &def, "p").unwrap();
            let mut attrs = Map::new();
            attrs.insert("email".into(), email);
            attrs.insert("tier".into(), tier);
            attrs.insert("version".into(), version);
            attrs.insert("name".into(), name);
            let res = flag.evaluate_at(&Context { targeting_key: None, attrs: &attrs }, 1_700_000_000);
            prop_assert_eq!(res.variant.is_some(), res.value.is_some());
        }
    }
}
