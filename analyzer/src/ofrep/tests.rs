//! The app-side answer equals the filter's decision for the same user (10 000 users, every segment,
//! several shares, kill switch); the conventions' errors name line and field; a refused file keeps
//! the old flags.

use super::*;
use dwcp_core::config::{AttrType, FilterConfig};
use dwcp_core::decision::{decide, Freshness, Track};
use dwcp_core::state::RolloutState;

fn shipped_flags() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/flags.json")).unwrap()
}

fn state(shares: &[(&str, u32)], kill_all: bool) -> DynamicState {
    let mut s = DynamicState {
        version: 7,
        kill_all,
        ..Default::default()
    };
    s.rollouts.insert(
        "demo".into(),
        RolloutState {
            phase: "5%".into(),
            segments: shares.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        },
    );
    s
}

/// User `i`'s attributes, spread over every segment.
fn user(i: usize) -> Vec<(&'static str, String)> {
    let mut a = vec![];
    match i % 7 {
        0 => a.push(("email", format!("u{i}@company.com"))),
        1 => a.push(("beta_opt_in", "true".into())),
        2 => a.push(("tier", "premium".into())),
        3 => a.push(("tier", "enterprise".into())),
        4 => a.push(("country", "de".into())),
        _ => {}
    }
    a
}

#[test]
fn app_side_equals_the_filter_for_10000_users() {
    let flags = parse(&shipped_flags()).unwrap();
    let cfg = FilterConfig::from_slice(br#"{"rollouts": [{"name": "demo"}]}"#).unwrap();
    for (shares, kill) in [
        (
            vec![
                ("internal", 10_000),
                ("beta", 10_000),
                ("premium", 1_000),
                ("enterprise", 500),
                ("standard", 500),
            ],
            false,
        ),
        (
            vec![
                ("internal", 10_000),
                ("beta", 10_000),
                ("premium", 2_500),
                ("enterprise", 500),
                ("standard", 2_500),
            ],
            false,
        ),
        (vec![("standard", 5_000)], true),
    ] {
        let st = state(&shares, kill);
        let mut canaries = 0;
        for i in 0..10_000 {
            let id = format!("user-{i}");
            let attrs = user(i);
            let mut headers = vec![("x-user-id".to_string(), id.clone().into_bytes())];
            let mut ctx = Map::new();
            ctx.insert("targetingKey".into(), Value::String(id.clone()));
            for (name, v) in &attrs {
                let (_, header, ty) = cfg.attributes.iter().find(|(n, _, _)| n == name).unwrap();
                headers.push((header.clone(), v.clone().into_bytes()));
                ctx.insert(
                    name.to_string(),
                    match ty {
                        AttrType::Bool => Value::Bool(v == "true"),
                        AttrType::String => Value::String(v.clone()),
                    },
                );
            }
            let d = decide(&cfg, Some(&st), Freshness::Fresh, 0, headers.as_slice());
            let v = evaluate(&flags, "dwcp-demo-v2", &ctx, &st);
            let app_canary = v["value"] == Value::Bool(true);
            assert_eq!(
                app_canary,
                d.track == Track::Canary,
                "user {id} {attrs:?}: app {v} vs filter {d:?}"
            );
            canaries += usize::from(app_canary);
        }
        if kill {
            assert_eq!(canaries, 0);
        } else {
            assert!(
                canaries > 1_000,
                "{canaries} canaries: the comparison is not vacuous"
            );
        }
    }
}

#[test]
fn kill_switch_and_prerequisite_give_the_baseline() {
    let st = state(&[("standard", 10_000)], false);
    let mut ctx = Map::new();
    ctx.insert("targetingKey".into(), Value::String("bob".into()));
    let on = parse(&shipped_flags()).unwrap();
    assert_eq!(evaluate(&on, "dwcp-demo-v2", &ctx, &st)["value"], true);
    let killed = parse(&shipped_flags().replacen(
        "\"defaultVariant\": \"on\"",
        "\"defaultVariant\": \"off\"",
        1,
    ))
    .unwrap();
    let v = evaluate(&killed, "dwcp-demo-v2", &ctx, &st);
    assert_eq!(
        (v["value"].clone(), v["reason"].clone()),
        (Value::Bool(false), Value::from("DISABLED"))
    );
    let text = shipped_flags();
    let i = text.find("dwcp-infrastructure-ready\": {").unwrap();
    let mut t2 = text.clone();
    let j = i + text[i..].find("\"defaultVariant\": \"on\"").unwrap();
    t2.replace_range(
        j..j + "\"defaultVariant\": \"on\"".len(),
        "\"defaultVariant\": \"off\"",
    );
    let v = evaluate(&parse(&t2).unwrap(), "dwcp-demo-v2", &ctx, &st);
    assert_eq!(v["value"], false);
    assert!(v["metadata"]["dwcp.why"]
        .as_str()
        .unwrap()
        .contains("dwcp-infrastructure-ready"));
    assert_eq!(
        evaluate(&on, "nope", &ctx, &st)["errorCode"],
        "FLAG_NOT_FOUND"
    );
}

#[test]
fn bad_files_name_line_and_field() {
    let text = shipped_flags();
    let cases = [
        (text.replacen("\"dwcp.canaryVariant\": \"on\"", "\"dwcp.canaryVariant\": \"maybe\"", 1), "flags.dwcp-manager-v2.metadata.dwcp.canaryVariant", "maybe"),
        (text.replacen("\"dwcp.prerequisites\": [\"dwcp-infrastructure-ready\"]", "\"dwcp.prerequisites\": [\"nope\"]", 1), "dwcp.prerequisites", "dwcp.prerequisites"),
        (text.replacen("\"defaultVariant\": \"off\"", "\"defaultVariant\": \"of\"", 1), "defaultVariant", "defaultVariant"),
        (text.replacen("\"state\": \"ENABLED\",\n      \"variants\": { \"on\": true, \"off\": false },\n      \"defaultVariant\": \"off\"", "\"state\": \"ENABLED\",, ", 1), "line", "state"),
    ];
    for (bad, field, on_line) in cases {
        let e = parse(&bad).err().unwrap();
        assert!(e.contains(field), "{e:?} does not name {field}");
        let n: usize = e
            .strip_prefix("line ")
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let line = bad.lines().nth(n - 1).unwrap();
        assert!(line.contains(on_line), "{e}: line {n} is {line:?}");
    }
}

#[test]
fn refused_reload_keeps_the_old_flags() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("flags.json");
    std::fs::write(&p, shipped_flags()).unwrap();
    let mut src = FlagSource::new(&p);
    assert_eq!(
        src.poll(),
        Reload::Loaded {
            kill_switch: Some(true),
            previous: None
        }
    );
    assert_eq!(src.poll(), Reload::Unchanged);
    std::fs::write(&p, "{\"flags\": {\"x\": {\"state\": \"ON\"}}}").unwrap();
    assert!(matches!(src.poll(), Reload::Refused(e) if e.contains("state")));
    assert_eq!(src.generation, 1);
    assert!(
        src.flags
            .as_ref()
            .unwrap()
            .set
            .get("dwcp-demo-v2")
            .is_some(),
        "old flags kept"
    );
    std::fs::write(
        &p,
        shipped_flags().replacen(
            "\"defaultVariant\": \"on\"",
            "\"defaultVariant\": \"off\"",
            1,
        ),
    )
    .unwrap();
    assert_eq!(
        src.poll(),
        Reload::Loaded {
            kill_switch: Some(false),
            previous: Some(true)
        }
    );
    assert_eq!(src.generation, 2);
}
