// Validates Kubernetes and Istio/Prometheus-Operator manifests with the schemas generated from the real
// OpenAPI specs and CRDs (kubernetes-models, @kubernetes-models/istio, @kubernetes-models/prometheus-
// operator). Usage: node validate-k8s.mjs FILE...  Prints one line per document; exit 1 if any fails.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const nm = path.join(process.env.TOOLS_NODE, "node_modules");
const yaml = (await import(pathToFileURL(path.join(nm, "js-yaml/index.js")))).default;

function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group.endsWith("istio.io")) return path.join(nm, "@kubernetes-models/istio", group, version, `${kind}.js`);
  if (group === "monitoring.coreos.com")
    return path.join(nm, "@kubernetes-models/prometheus-operator", group, version, `${kind}.js`);
  return path.join(nm, "kubernetes-models", group ? `${group}/${version}` : version, `${kind}.js`);
}

let failed = 0, checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d != null);
  for (const doc of docs) {
    const id = `${file}: ${doc.kind}/${doc.metadata?.name ?? "?"}`;
    checked++;
    const p = modulePath(doc.apiVersion ?? "", doc.kind ?? "");
    if (!fs.existsSync(p)) {
      console.log(`FAIL ${id}: no schema for apiVersion ${doc.apiVersion} kind ${doc.kind}`);
      failed++;
      continue;
    }
    const Model = (await import(pathToFileURL(p)))[doc.kind];
    try {
      new Model(doc).validate();
      console.log(`ok   ${id} (${doc.apiVersion})`);
    } catch (e) {
      console.log(`FAIL ${id}: ${String(e.message).split("\n").slice(0, 4).join("; ")}`);
      failed++;
    }
  }
}
console.log(`${checked - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
