#!/usr/bin/env python3
"""Write the CRD-heavy benchmark chart: charts/demo-platform plus what real charts carry in bulk.

usage: crd_chart.py OUT_DIR

Real third-party charts are mostly bytes the post-renderer neither changes nor reads: argo-cd's
render is about 1.9 MB, most of it CustomResourceDefinitions, and kube-prometheus-stack adds
Grafana dashboards in ConfigMaps and PrometheusRules. This chart has that shape, deterministically:

* the demo platform's workloads, Services, Secrets, the ConfigMap they read, the Ingress, the hook
  Job and the CronJob (charts/demo-platform's templates, unchanged), plus six more services
  through its values;
* three CustomResourceDefinitions whose `openAPIV3Schema` is built from Kubernetes' own API schema
  (kubernetes-validate's definitions, `$ref`s inlined as controller-gen inlines them): one embeds
  a whole PodTemplateSpec (about 0.5 MB, like Argo's or Tekton's), one a Container list in two
  served versions, one a ServiceSpec; written as `sigs.k8s.io/yaml` (yaml.v2) writes them: sorted
  keys, sequences not indented, plain strings folded at 80 columns, multi-line strings as `|-`;
* Grafana dashboards (JSON files) and a proxy configuration embedded in ConfigMaps that no
  workload references, with `.Files.Get | nindent 4` as charts embed them;
* a PrometheusRule (a custom resource) with a hundred alerting rules.

Prints nothing; exit 1 if the schema definitions are missing (run tests/tools/setup-venv.sh).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?"
    r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def definitions() -> dict:
    pattern = os.path.join(
        os.path.dirname(sys.executable), "..", "lib", "python*", "site-packages", "kubernetes_validate",
        "kubernetes-json-schema", "v*-local", "_definitions.json",
    )
    found = sorted(glob.glob(pattern), key=lambda p: [int(x) for x in p.split("/v")[-1].split("-")[0].split(".")])
    if not found:
        print("crd_chart.py: kubernetes-validate's schema definitions not found: run tests/tools/setup-venv.sh", file=sys.stderr)
        sys.exit(1)
    with open(found[-1], encoding="utf-8") as f:
        return json.load(f)["$defs"]


def structural(defs: dict, node: dict, depth: int = 0) -> dict:
    """A structural schema (what a CRD's openAPIV3Schema holds) with every `$ref` inlined."""
    if "$ref" in node:
        out = structural(defs, defs[node["$ref"].rsplit("/", 1)[-1]], depth + 1)
        if "description" in node:
            out = dict(out, description=node["description"])
        return out
    out: dict = {}
    if "description" in node:
        out["description"] = node["description"]
    if "oneOf" in node:
        # IntOrString and Quantity, as controller-gen writes them.
        kinds = {t for alt in node["oneOf"] for t in (alt["type"] if isinstance(alt["type"], list) else [alt["type"]])}
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if "number" in kinds:
            out["pattern"] = QUANTITY_PATTERN
        out["x-kubernetes-int-or-string"] = True
        return out
    types = node.get("type")
    if isinstance(types, list):
        types = next((t for t in types if t != "null"), None)
    if types:
        out["type"] = types
    if "format" in node:
        out["format"] = node["format"]
    if "enum" in node:
        out["enum"] = [e for e in node["enum"] if e is not None]
    if "properties" in node and depth < 40:
        out["properties"] = {k: structural(defs, v, depth + 1) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = structural(defs, node["items"], depth + 1)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(defs, node["additionalProperties"], depth + 1)
    if node.get("required"):
        out["required"] = node["required"]
    for k in ("x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type"):
        if k in node:
            out[k] = node[k]
    return out


class GoYaml(yaml.SafeDumper):
    """yaml.v2's layout: multi-line strings as literal blocks, no anchors (Go writes every value
    out), everything else as PyYAML does."""

    def ignore_aliases(self, data) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str):
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


GoYaml.add_representer(str, _str)


def dump(obj) -> str:
    return yaml.dump(obj, Dumper=GoYaml, default_flow_style=False, sort_keys=True, width=80, allow_unicode=True)


def ref(name: str) -> dict:
    return {"$ref": "#/$defs/" + name}


def crd(group: str, kind: str, plural: str, versions: list[tuple[str, dict]], defs: dict) -> dict:
    out_versions = []
    for i, (version, spec) in enumerate(versions):
        schema = {
            "description": f"{kind} is the Schema for the {plural} API.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "metadata": {"type": "object"},
                "spec": structural(defs, spec),
                "status": {
                    "description": f"{kind}Status defines the observed state of {kind}.",
                    "type": "object",
                    "properties": {
                        "conditions": {"type": "array", "items": structural(defs, ref("io.k8s.apimachinery.pkg.apis.meta.v1.Condition"))},
                        "observedGeneration": {"type": "integer", "format": "int64"},
                    },
                },
            },
        }
        out_versions.append({
            "name": version,
            "served": True,
            "storage": i == len(versions) - 1,
            "schema": {"openAPIV3Schema": schema},
            "subresources": {"status": {}},
        })
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "annotations": {"controller-gen.kubebuilder.io/version": "v0.16.5"}},
        "spec": {
            "group": group,
            "names": {"kind": kind, "listKind": kind + "List", "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": out_versions,
        },
    }


def object_spec(properties: dict, required: list[str] | None = None, description: str = "") -> dict:
    spec = {"type": "object", "properties": properties, "description": description}
    if required:
        spec["required"] = required
    return spec


def dashboard(n: int, panels: int) -> str:
    """A Grafana dashboard as charts ship them (indented JSON)."""
    out = {
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "name": "Annotations & Alerts"}]},
        "editable": True,
        "panels": [],
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["kubernetes-mixin", f"bench-{n}"],
        "templating": {"list": [{"name": "namespace", "type": "query", "query": "label_values(kube_pod_info, namespace)", "refresh": 2}]},
        "time": {"from": "now-1h", "to": "now"},
        "title": f"Kubernetes / Compute Resources / Workload {n}",
        "uid": f"bench{n:04d}",
    }
    for p in range(panels):
        out["panels"].append({
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": "bytes", "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 80}]}}, "overrides": []},
            "gridPos": {"h": 7, "w": 12, "x": (p % 2) * 12, "y": (p // 2) * 7},
            "id": p + 1,
            "options": {"legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "right"}, "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [{
                "expr": f'sum(container_memory_working_set_bytes{{job="kubelet", metrics_path="/metrics/cadvisor", namespace="$namespace", container!="", image!=""}} * on(namespace,pod) group_left(workload) namespace_workload_pod:kube_pod_owner:relabel{{namespace="$namespace", workload_type="deployment"}}) by (pod) # panel {p}',
                "legendFormat": "{{pod}}",
                "refId": "A",
            }],
            "title": f"Memory Usage (w/o cache) #{p}",
            "type": "timeseries",
        })
    return json.dumps(out, indent=2) + "\n"


def proxy_conf(blocks: int) -> str:
    lines = ["worker_processes auto;", "events { worker_connections 4096; }", "http {", "  # upstreams: one per backend"]
    for b in range(blocks):
        lines += [
            f"  upstream backend_{b} {{ server backend-{b}.svc.cluster.local:8080 max_fails=3 fail_timeout=10s; keepalive 32; }}",
            "  server {",
            f"    listen {8000 + b};",
            f"    location /api/v{b % 3}/ {{ proxy_pass http://backend_{b}; proxy_set_header Host $host; proxy_read_timeout 60s; }}",
            '    location = /healthz { return 200 "ok\\n"; }',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def rules(count: int) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "RELEASE-bench-rules", "labels": {"release": "RELEASE"}},
        "spec": {"groups": [{
            "name": "bench.rules",
            "rules": [{
                "alert": f"BenchWorkloadDegraded{i}",
                "annotations": {
                    "description": f"Workload {{{{ $labels.namespace }}}}/{{{{ $labels.workload }}}} has had fewer than {i % 5 + 1} ready replicas for 15 minutes.",
                    "runbook_url": f"https://runbooks.example.org/kubernetes/benchworkloaddegraded{i}",
                    "summary": "Workload has not matched the expected number of replicas.",
                },
                "expr": f'(kube_deployment_spec_replicas{{job="kube-state-metrics"}} > kube_deployment_status_replicas_available{{job="kube-state-metrics"}}) and (changes(kube_deployment_status_replicas_updated[10m]) == {i % 3})',
                "for": "15m",
                "labels": {"severity": "warning" if i % 4 else "critical"},
            } for i in range(count)],
        }]},
    }


EXTRA_SERVICES = {
    name: {
        "component": comp,
        "replicas": 2,
        "port": port,
        "portName": "http",
        "legacyLabels": {"app": name, "version": "v1"},
        "env": {
            "LOG_LEVEL": "info",
            "UPSTREAM_URL": "http://api-gateway:8000",
            "CACHE_TTL": "300",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4317",
            "FEATURE_FLAGS": "search,billing,notifications",
        },
        "podAnnotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    }
    for name, comp, port in [
        ("search", "search", 8010), ("billing", "billing", 8011), ("notifications", "messaging", 8012),
        ("reporting", "reporting", 8013), ("auth", "identity", 8014), ("admin-console", "web", 8015),
    ]
}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[0]
    defs = definitions()
    if os.path.exists(out):
        shutil.rmtree(out)
    src = os.path.join(ROOT, "charts", "demo-platform")
    shutil.copytree(os.path.join(src, "templates"), os.path.join(out, "templates"))
    os.makedirs(os.path.join(out, "files"))
    with open(os.path.join(src, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    values["services"].update(EXTRA_SERVICES)
    with open(os.path.join(out, "values.yaml"), "w", encoding="utf-8") as f:
        f.write(dump(values))
    with open(os.path.join(out, "Chart.yaml"), "w", encoding="utf-8") as f:
        f.write("apiVersion: v2\nname: bench-platform\ndescription: The demo platform with the bulk of a real chart (CRDs, dashboards, rules).\n"
                "type: application\nversion: 0.1.0\nappVersion: \"1.8.0\"\n")

    crds = [
        crd("bench.meshmove.io", "JobSet", "jobsets", [("v1", object_spec({
            "template": ref("io.k8s.api.core.v1.PodTemplateSpec"),
            "parallelism": {"type": "integer", "format": "int32", "description": "How many pods run at once."},
            "ttlSecondsAfterFinished": {"type": "integer", "format": "int32"},
        }, ["template"], "JobSetSpec defines the desired state of JobSet."))], defs),
        crd("bench.meshmove.io", "Sidecar", "sidecars", [(v, object_spec({
            "containers": {"type": "array", "items": ref("io.k8s.api.core.v1.Container"), "description": "Containers to add to selected pods."},
            "selector": ref("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"),
        }, ["containers"], "SidecarSpec selects pods and the containers added to them.")) for v in ("v1beta1", "v1")], defs),
        crd("bench.meshmove.io", "Route", "routes", [("v1", object_spec({
            "service": ref("io.k8s.api.core.v1.ServiceSpec"),
            "hostnames": {"type": "array", "items": {"type": "string"}},
        }, None, "RouteSpec exposes a Service."))], defs),
    ]
    for c in crds:
        name = c["metadata"]["name"].split(".")[0]
        with open(os.path.join(out, "files", f"crd-{name}.yaml"), "w", encoding="utf-8") as f:
            f.write(dump(c))
    with open(os.path.join(out, "templates", "crds.yaml"), "w", encoding="utf-8") as f:
        for c in crds:
            name = c["metadata"]["name"].split(".")[0]
            f.write(f"---\n{{{{ .Files.Get \"files/crd-{name}.yaml\" }}}}\n")

    for n in range(4):
        with open(os.path.join(out, "files", f"dashboard-{n}.json"), "w", encoding="utf-8") as f:
            f.write(dashboard(n, 24))
    with open(os.path.join(out, "files", "proxy.conf"), "w", encoding="utf-8") as f:
        f.write(proxy_conf(60))
    with open(os.path.join(out, "templates", "bulk-configmaps.yaml"), "w", encoding="utf-8") as f:
        for n in range(4):
            f.write(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                f"  name: {{{{ .Values.namePrefix }}}}grafana-dashboard-{n}\n"
                "  labels:\n    grafana_dashboard: \"1\"\n    app.kubernetes.io/instance: {{ .Release.Name }}\n"
                f"data:\n  workload-{n}.json: |-\n    {{{{- .Files.Get \"files/dashboard-{n}.json\" | nindent 4 }}}}\n"
            )
        f.write(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.namePrefix }}edge-proxy\n"
            "  labels:\n    app.kubernetes.io/instance: {{ .Release.Name }}\n"
            "data:\n  nginx.conf: |\n    {{- .Files.Get \"files/proxy.conf\" | nindent 4 }}\n"
        )
    with open(os.path.join(out, "templates", "rules.yaml"), "w", encoding="utf-8") as f:
        # Prometheus' own `{{ $labels.x }}` must reach the output: escaped for Helm's templates.
        text = dump(rules(100)).replace("{{", "\0L").replace("}}", "\0R")
        text = text.replace("\0L", "{{`{{`}}").replace("\0R", "{{`}}`}}")
        f.write(text.replace("RELEASE", "{{ .Release.Name }}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
