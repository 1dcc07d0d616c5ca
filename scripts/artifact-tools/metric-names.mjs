// Lists every metric name that the alert rules and Grafana dashboards query, with where it is used,
// using Prometheus' own PromQL grammar (@prometheus-io/lezer-promql): a name is the identifier of a
// vector selector, so functions, labels and keywords are never mistaken for metrics.
// Usage: node metric-names.mjs RULES.yaml... DASHBOARD.json...   Output: JSON {uses: {name: [where]},
// recorded: [names defined by recording rules], errors: [unparsable expressions]}.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const nm = path.join(process.env.TOOLS_NODE, "node_modules");
const { parser } = await import(pathToFileURL(path.join(nm, "@prometheus-io/lezer-promql/dist/index.es.js")));
const yaml = (await import(pathToFileURL(path.join(nm, "js-yaml/index.js")))).default;

const uses = {}, recorded = new Set(), errors = [];
function names(expr, where) {
  const tree = parser.parse(expr);
  const c = tree.cursor();
  let found = 0;
  do {
    if (c.type.isError) errors.push(`${where}: cannot parse ${JSON.stringify(expr)}`);
    if (c.name === "Identifier" && c.node.parent?.name === "VectorSelector") {
      const n = expr.slice(c.from, c.to);
      (uses[n] ??= []).push(where);
      found++;
    }
  } while (c.next());
  if (!found && !errors.length) errors.push(`${where}: no metric in ${JSON.stringify(expr)}`);
}
for (const f of process.argv.slice(2)) {
  if (f.endsWith(".json")) {
    const d = JSON.parse(fs.readFileSync(f, "utf8"));
    for (const p of d.panels ?? [])
      for (const t of p.targets ?? []) names(t.expr, `${f} panel "${p.title}"`);
    for (const v of d.templating?.list ?? []) {
      const q = typeof v.query === "string" ? v.query : v.query?.query;
      const m = v.type === "query" && /^label_values\((.+),\s*\w+\)$/.exec(q ?? "");
      if (m) names(m[1], `${f} variable $${v.name}`);
    }
  } else {
    const doc = yaml.load(fs.readFileSync(f, "utf8"));
    for (const g of doc.groups ?? doc.spec?.groups ?? [])
      for (const r of g.rules) {
        if (r.record) recorded.add(r.record);
        names(String(r.expr), `${f} ${r.alert ? "alert " + r.alert : "record " + r.record}`);
      }
  }
}
console.log(JSON.stringify({ uses, recorded: [...recorded], errors }));
