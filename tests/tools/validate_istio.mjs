#!/usr/bin/env node
// Validate Istio objects (every API group under istio.io) against Istio's CRD schemas, as the
// npm package @kubernetes-models/istio generates them from Istio's CRDs, and Gateway API objects
// (gateway.networking.k8s.io, gateway.networking.x-k8s.io: the waypoints and routes Istio's
// ambient mode and gateways use) against the Gateway API CRDs, as @kubernetes-models/gateway-api
// generates them.
//
//   node tests/tools/validate_istio.mjs [--quiet] [--lax] FILE...   ("-" = stdin; YAML 1.1 or JSON)
//   node tests/tools/validate_istio.mjs --batch [--lax]             (validate_manifests.py's protocol)
//
// The packages come from target/node-tools/node_modules (tests/tools/setup-node.sh; override with
// --node-dir DIR or MESHMOVE_TOOLS_NODE_DIR). For each document the model class is picked from
// the package of its API group by group, version and kind
// (`@kubernetes-models/<istio|gateway-api>/<group>/<version>/<Kind>`) and `new Kind(obj).validate()`
// runs. A group, version or kind the package has no schema for is
// an error, never a skip. Documents of other groups are SKIP here (validate_manifests.py checks
// the Kubernetes ones).
//
// Strict like kubernetes-validate --strict: the generated schemas accept fields they do not
// declare (the CRDs are structural, so the API server would prune such a field or, with
// kubectl's default strict field validation, refuse it). After the schema passes, every field
// of the object is therefore probed: replaced by `true` and by a string, a field the schema
// declares makes validation fail for at least one of them, so a field for which both pass is
// not in the schema and is reported ("unknown field"). Subtrees the CRDs leave free-form
// (`status`, EnvoyFilter patch values, WasmPlugin pluginConfig, IstioOperator spec, managed
// fields) are not probed. --lax turns the unknown-field check off.
//
// Not checked (they are not in the generated schemas): the CRDs' CEL rules
// (x-kubernetes-validations, e.g. that a duration string parses, or Gateway API's rules across
// fields) and istiod's validating webhook.
//
// Output (files): one "OK", "SKIP" or "ERROR" line per document, then
// "validated N Istio and Gateway API objects: N failed, N skipped (neither)"; exit 1 if anything
// failed.
// --batch: stdin {"documents": [{"file", "index", "object"}]}, stdout a JSON array of
// {"status": "OK"|"SKIP"|"ERROR", "schema", "errors": [...]} in the same order.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const PROBES = [true, "meshmove-probe"];
// Free-form subtrees ("*" = any key or array index): the CRDs mark them
// x-kubernetes-preserve-unknown-fields (the package types them `{}`).
const FREE_FORM = {
  "*": [["status"], ["metadata", "managedFields", "*", "fieldsV1"]],
  EnvoyFilter: [["spec", "configPatches", "*", "patch", "value"]],
  WasmPlugin: [["spec", "pluginConfig"]],
  IstioOperator: [["spec"]],
};

function usage(message) {
  if (message) process.stderr.write(`validate_istio.mjs: ${message}\n`);
  process.stderr.write("usage: validate_istio.mjs [--quiet] [--lax] [--node-dir DIR] FILE... | --batch\n");
  process.exit(2);
}

const args = process.argv.slice(2);
const opts = { quiet: false, lax: false, batch: false, nodeDir: process.env.MESHMOVE_TOOLS_NODE_DIR || "", files: [] };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--quiet") opts.quiet = true;
  else if (a === "--lax") opts.lax = true;
  else if (a === "--batch") opts.batch = true;
  else if (a === "--node-dir") opts.nodeDir = args[++i] ?? usage("--node-dir needs a directory");
  else if (a.startsWith("--node-dir=")) opts.nodeDir = a.slice("--node-dir=".length);
  else if (a === "-h" || a === "--help") usage();
  else if (a.startsWith("--")) usage(`unknown option ${a}`);
  else opts.files.push(a);
}
if (!opts.batch && opts.files.length === 0) usage("no files");
const nodeDir = resolve(opts.nodeDir || join(here, "..", "..", "target", "node-tools"));
// The schema packages, each with the API groups it answers for.
const PACKAGES = [
  { name: "istio", owns: (group) => group === "istio.io" || group.endsWith(".istio.io") },
  { name: "gateway-api", owns: (group) => group === "gateway.networking.k8s.io" || group === "gateway.networking.x-k8s.io" },
].map((p) => {
  const dir = join(nodeDir, "node_modules", "@kubernetes-models", p.name);
  if (!existsSync(join(dir, "package.json"))) {
    process.stderr.write(`validate_istio.mjs: ${dir} is missing: run tests/tools/setup-node.sh (setup-venv.sh runs it)\n`);
    process.exit(2);
  }
  const version = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
  return { ...p, dir, source: `@kubernetes-models/${p.name} ${version}` };
});

const listing = (dir, pred) => (existsSync(dir) ? readdirSync(dir).filter(pred).sort() : []);
const groupOf = (apiVersion) => (apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.lastIndexOf("/")) : "");
/** The schema package of an API version, or undefined (neither Istio nor Gateway API). */
const packageOf = (apiVersion) => PACKAGES.find((p) => p.owns(groupOf(apiVersion)));

const models = new Map();
/** The model class for apiVersion/kind, or an Error saying what the package has instead. */
async function model(apiVersion, kind) {
  const key = `${apiVersion}\0${kind}`;
  if (!models.has(key)) models.set(key, await loadModel(apiVersion, kind));
  return models.get(key);
}

async function loadModel(apiVersion, kind) {
  const pkg = packageOf(apiVersion);
  const slash = apiVersion.lastIndexOf("/");
  const group = apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  const groups = listing(pkg.dir, (n) => pkg.owns(n));
  if (!groups.includes(group)) {
    return new Error(`no schema for API group ${group} (${pkg.source} has ${groups.join(", ")})`);
  }
  const versions = listing(join(pkg.dir, group), (n) => /^v[0-9a-z]+$/.test(n));
  if (!versions.includes(version)) {
    return new Error(`no schema for ${apiVersion} (${pkg.source} has ${group} ${versions.join(", ")})`);
  }
  const kinds = listing(join(pkg.dir, group, version), (n) => /^[A-Z][A-Za-z0-9]*\.js$/.test(n)).map((n) => n.slice(0, -3));
  if (!kinds.includes(kind)) {
    return new Error(`no kind ${kind} in ${apiVersion} (${pkg.source} has ${kinds.join(", ")})`);
  }
  const mod = await import(pathToFileURL(join(pkg.dir, group, version, `${kind}.js`)).href);
  const cls = mod[kind];
  if (typeof cls !== "function" || cls.apiVersion !== apiVersion || cls.kind !== kind) {
    return new Error(`${group}/${version}/${kind}.js of ${pkg.source} exports no ${kind} model`);
  }
  return cls;
}

/** The schema's errors for obj (an empty list when valid). */
function schemaErrors(cls, obj) {
  try {
    new cls(obj).validate();
    return [];
  } catch (err) {
    if (!Array.isArray(err?.errors)) throw err;
    const seen = new Set();
    for (const e of err.errors) {
      let detail = "";
      if (e.keyword === "enum" && e.params?.allowedValues) detail = ` (allowed: ${e.params.allowedValues.join(", ")})`;
      seen.add(`${e.instancePath || "/"}: ${e.message}${detail}`);
    }
    return [...seen];
  }
}

const pointer = (path) => "/" + path.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
const matches = (pattern, path) => pattern.length === path.length && pattern.every((p, i) => p === "*" || p === String(path[i]));

/** Fields of obj that the schema does not declare (JSON pointers), see the header. */
function unknownFields(cls, obj) {
  const free = [...FREE_FORM["*"], ...(FREE_FORM[obj.kind] ?? [])];
  const found = [];
  const declared = (path) =>
    PROBES.some((probe) => {
      const copy = structuredClone(obj);
      let node = copy;
      for (const p of path.slice(0, -1)) node = node[p];
      node[path[path.length - 1]] = probe;
      return schemaErrors(cls, copy).length > 0;
    });
  const walk = (value, path) => {
    if (free.some((f) => matches(f, path))) return;
    if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, [...path, i]));
    } else if (value !== null && typeof value === "object") {
      for (const key of Object.keys(value)) {
        const at = [...path, key];
        if (free.some((f) => matches(f, at)) || declared(at)) walk(value[key], at);
        else found.push(`${pointer(at)}: unknown field "${key}" (not in the schema)`);
      }
    }
  };
  walk(obj, []);
  return found;
}

/** {status, schema, errors} for one document. */
async function validateDoc(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    return { status: "ERROR", schema: null, errors: ["not a Kubernetes object (a mapping with apiVersion and kind)"] };
  }
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !kind) {
    return { status: "ERROR", schema: null, errors: ["not a Kubernetes object (apiVersion/kind missing)"] };
  }
  const pkg = packageOf(apiVersion);
  if (!pkg) return { status: "SKIP", schema: null, errors: [] };
  const cls = await model(apiVersion, kind);
  if (cls instanceof Error) return { status: "ERROR", schema: null, errors: [cls.message] };
  const schema = `${apiVersion}/${kind} (${pkg.source})`;
  let errors;
  try {
    errors = schemaErrors(cls, obj);
    if (errors.length === 0 && !opts.lax) errors = unknownFields(cls, obj);
  } catch (err) {
    errors = [`validator crashed: ${err?.stack ?? err}`];
  }
  return { status: errors.length ? "ERROR" : "OK", schema, errors };
}

function label(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return `<${Array.isArray(obj) ? "list" : typeof obj}>`;
  const meta = obj.metadata !== null && typeof obj.metadata === "object" ? obj.metadata : {};
  return `${String(obj.kind ?? "<no kind>").toLowerCase()}/${meta.name || meta.generateName || "<unnamed>"}`;
}

/** The non-empty documents of a YAML 1.1 (or JSON) stream as [index (1-based), value]. */
function loadYaml(text) {
  const require = createRequire(join(nodeDir, "package.json"));
  const YAML = require("yaml");
  // Timestamps stay strings, as in Kubernetes' own YAML decoding into JSON.
  const customTags = (tags) => tags.filter((t) => t.tag !== "tag:yaml.org,2002:timestamp");
  const docs = YAML.parseAllDocuments(text, { version: "1.1", customTags });
  const out = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length) throw new Error(doc.errors.map((e) => e.message).join("; "));
    const value = doc.toJS({ maxAliasCount: 1000 });
    if (value !== null && value !== undefined) out.push([i + 1, value]);
  });
  return out;
}

async function main() {
  if (opts.batch) {
    const input = JSON.parse(readFileSync(0, "utf8"));
    const results = [];
    for (const d of input.documents) results.push(await validateDoc(d.object));
    process.stdout.write(JSON.stringify(results) + "\n");
    return 0;
  }
  let passed = 0, failed = 0, skipped = 0;
  for (const file of opts.files) {
    let docs;
    try {
      docs = loadYaml(readFileSync(file === "-" ? 0 : file, "utf8"));
    } catch (err) {
      console.log(`ERROR ${file}: cannot read YAML: ${err.message}`);
      failed++;
      continue;
    }
    for (const [index, obj] of docs) {
      const where = `${file}#${index} ${label(obj)}`;
      const r = await validateDoc(obj);
      if (r.status === "SKIP") {
        skipped++;
        if (!opts.quiet) console.log(`SKIP ${where} (${obj.apiVersion}): neither an Istio nor a Gateway API object`);
      } else if (r.status === "OK") {
        passed++;
        if (!opts.quiet) console.log(`OK ${where} against ${r.schema}`);
      } else {
        failed++;
        for (const e of r.errors) console.log(`ERROR ${where} (${obj?.apiVersion ?? "?"}): ${e}`);
      }
    }
  }
  console.log(`validated ${passed + failed} Istio and Gateway API objects: ${failed} failed, ${skipped} skipped (neither)`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
