//! `GET /` (and `/plan`): the companion's status page, self-contained — the rollouts (status, phase,
//! per-segment shares, verdict, the last decision with its evidence), fetched by inline script from
//! `/v1/rollouts` and each rollout's events, and, with a plan, the train: a timeline per system, planned
//! (hollow) vs actual (filled) per phase, freezes shaded, "now" marked, and why each one waits. No
//! build step, no CDN, nothing to install: server-rendered SVG plus a few lines of script.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ms(v: &Value) -> Option<f64> {
    v.get("ms").and_then(Value::as_u64).map(|m| m as f64)
}

/// Renders the page from the `/v1/plan` JSON (`None`: no plan configured).
pub fn render(plan: Option<&Value>) -> String {
    let train = plan.map_or_else(
        || "<p id=\"noplan\">No release train configured (<code>[train]</code> in the companion's config).</p>".to_string(),
        train_section,
    );
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>dwcp companion</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:left;vertical-align:top}}pre{{margin:0;font-size:11px;max-width:60em;white-space:pre-wrap}}.seg-excess{{color:#b00;font-weight:bold}}.seg-untested{{color:#888}}</style></head>
<body><h1>dwcp companion</h1>
<h2>Rollouts</h2><table id="rollouts"><tr><td>loading…</td></tr></table>
{train}
<script>
const esc=s=>String(s==null?'':s).replace(/[&<>"]/g,c=>({{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}}[c]));
async function load(){{
  const v=await (await fetch('/v1/rollouts')).json();
  const rows=await Promise.all((v.rollouts||[]).map(async r=>{{
    const st=Object.fromEntries((r.segments||[]).map(g=>[g.segment,g.state]));
    const sh=Object.entries(r.shares_bp||{{}}).map(([k,x])=>esc(k)+' '+(x/100)+'%'+(st[k]?' <span class="seg-'+esc(st[k])+'">('+esc(st[k])+')</span>':'')).join(', ');
    const vd=r.verdict?(esc(r.verdict.outcome)+': '+esc(r.verdict.reason)):'';
    let last='';
    try{{
      const e=await (await fetch('/v1/rollouts/'+encodeURIComponent(r.name)+'/events?limit=1')).json();
      const x=(e.events||[])[0];
      if(x) last='<b>'+esc(x.kind)+'</b> '+esc(x.message)+(x.evidence?'<pre>'+esc(JSON.stringify(x.evidence).slice(0,400))+'</pre>':'');
    }}catch(err){{last=esc(err);}}
    return '<tr class="rollout" data-rollout="'+esc(r.name)+'"><td>'+esc(r.name)+'</td><td class="status">'+esc(r.status)+'</td><td class="phase">'+esc(r.phase)+'</td><td class="shares">'+sh+'</td><td class="verdict">'+vd+'</td><td class="evidence">'+last+'</td></tr>';
  }}));
  document.getElementById('rollouts').innerHTML='<tr><th>rollout</th><th>status</th><th>phase</th><th>shares per segment</th><th>verdict</th><th>last decision and evidence</th></tr>'+rows.join('');
  document.body.dataset.loaded='yes';
}}
load().catch(e=>{{document.getElementById('rollouts').innerHTML='<tr><td>'+esc(e)+'</td></tr>';}});
setTimeout(()=>location.reload(),3000);
</script></body></html>"#
    )
}

/// The train part of the page: the timeline and the table.
fn train_section(v: &Value) -> String {
    let empty = Vec::new();
    let rollouts = v["rollouts"].as_array().unwrap_or(&empty);
    let start = ms(&v["start"]).unwrap_or(0.0);
    let now = ms(&v["now"]).unwrap_or(start);
    let mut end = now.max(start + 1.0);
    for r in rollouts {
        for p in r["phases"].as_array().unwrap_or(&empty) {
            for k in ["planned", "actual"] {
                if let Some(m) = ms(&p[k]) {
                    end = end.max(m);
                }
            }
        }
    }
    end += 7.0 * 86_400_000.0;
    let (left, width, row) = (170.0, 900.0, 34.0);
    let x = |m: f64| left + (m - start) / (end - start) * width;
    let height = 40.0 + row * rollouts.len() as f64;
    let mut svg = format!(
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="11">"#,
        left + width + 20.0
    );
    for f in v["freezes"].as_array().unwrap_or(&empty) {
        if let (Some(a), Some(b)) = (ms(&f["from"]), ms(&f["until"])) {
            svg.push_str(&format!(
                r##"<rect class="freeze" x="{:.1}" y="20" width="{:.1}" height="{:.1}" fill="#fde2e2"><title>freeze {}</title></rect>"##,
                x(a), (x(b) - x(a)).max(1.0), height - 20.0, esc(f["name"].as_str().unwrap_or(""))
            ));
        }
    }
    let weeks = ((end - start) / (7.0 * 86_400_000.0)).ceil() as u64;
    for w in 0..=weeks {
        let m = start + w as f64 * 7.0 * 86_400_000.0;
        svg.push_str(&format!(
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="16" y2="{height}" stroke="#ddd"/><text x="{0:.1}" y="12" fill="#666">w{1}</text>"##,
            x(m), w + 1
        ));
    }
    for (i, r) in rollouts.iter().enumerate() {
        let y = 24.0 + row * i as f64;
        let name = r["name"].as_str().unwrap_or("");
        let state = r["state"].as_str().unwrap_or("");
        svg.push_str(&format!(
            r#"<text x="4" y="{:.1}" class="sys" data-rollout="{}">{} <tspan fill="{}">{}</tspan></text>"#,
            y + 14.0, esc(name), esc(r["title"].as_str().unwrap_or(name)), colour(state), esc(state)
        ));
        let phases = r["phases"].as_array().unwrap_or(&empty);
        for (k, p) in phases.iter().enumerate() {
            let next = phases.get(k + 1);
            for (key, dy, fill) in [("planned", 0.0, "none"), ("actual", 13.0, colour(state))] {
                let Some(a) = ms(&p[key]) else { continue };
                let b = next
                    .and_then(|n| ms(&n[key]))
                    .unwrap_or(if key == "actual" {
                        now
                    } else {
                        a + 86_400_000.0
                    });
                svg.push_str(&format!(
                    r##"<rect class="{key}" data-rollout="{}" data-phase="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="11" fill="{fill}" stroke="#345" stroke-width="0.6"><title>{} {} {key} {}</title></rect>"##,
                    esc(name), esc(p["name"].as_str().unwrap_or("")), x(a), y + dy, (x(b) - x(a)).max(1.5),
                    esc(name), esc(p["name"].as_str().unwrap_or("")), esc(p[key]["time"].as_str().unwrap_or(""))
                ));
            }
        }
    }
    svg.push_str(&format!(
        r##"<line id="now" x1="{0:.1}" x2="{0:.1}" y1="16" y2="{height}" stroke="#c00" stroke-width="1.5"/></svg>"##,
        x(now)
    ));
    let mut table = String::from("<table id=\"train\"><tr><th>system</th><th>state</th><th>phase</th><th>started</th><th>why it waits</th></tr>");
    for r in rollouts {
        table.push_str(&format!(
            "<tr data-rollout=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r["name"].as_str().unwrap_or("")),
            esc(r["title"].as_str().unwrap_or("")),
            esc(r["state"].as_str().unwrap_or("")),
            esc(r["phase"].as_str().unwrap_or("-")),
            esc(r["started"]["time"].as_str().unwrap_or("-")),
            esc(r["waiting"].as_str().unwrap_or("")),
        ));
    }
    table.push_str("</table>");
    let freeze = v["freeze"]["name"]
        .as_str()
        .map_or(String::new(), |f| format!(" — <b>freeze {}</b>", esc(f)));
    format!(
        r#"<h2>Release train: {plan}</h2><p id="clock">plan time {now} (speed ×{speed}){freeze}</p>
{svg}
<p>hollow: planned, filled: actual; shaded: freeze; red line: now.</p>
{table}"#,
        plan = esc(v["plan"].as_str().unwrap_or("")),
        now = esc(v["now"]["time"].as_str().unwrap_or("")),
        speed = v["speed"],
    )
}

fn colour(state: &str) -> &'static str {
    match state {
        "running" => "#4a90d9",
        "done" => "#3c9d5d",
        "rolled_back" => "#d9534f",
        "paused" | "held" => "#e0a030",
        _ => "#999",
    }
}
