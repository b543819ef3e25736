#!/usr/bin/env python3
"""Self-test of the charts, the Helm plugin, the krew packaging and the tools.

usage: tests/tools/selftest.sh   (sets up target/venv, then runs this file)

Uses only the real tools (Helm 4 SDK, kubectl 1.37, kubernetes-validate) and
small stand-ins for the plugin binaries, so it needs no cargo build:

  * both charts render through Helm (helm_render.py) and every object passes
    strict schema validation (CloudNativePG Cluster: skipped);
  * validate.sh checks Istio objects against Istio's CRD schemas: valid ones
    pass, a wrong type, an unknown field or an unknown Istio kind fail, and
    other custom resources stay SKIP;
  * the YAML-1.1 trap values of demo-platform load as strings with PyYAML;
  * yaml11_roundtrip.py accepts an identical stream and names quoting damage;
  * charts/helm-plugin/mesh-migrate/plugin.yaml is accepted by Helm 4 and runs
    a stand-in `kubectl-mesh_migrate post-render` under all three strategies;
  * the krew manifests validate, release.sh packs stand-in binaries
    reproducibly, and kubectl finds and runs the generated completion helper.

Prints one line per check and "selftest: N passed, N failed"; exit 1 if any
check failed.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
from typing import Any, Callable

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = sys.executable
KUBECTL = os.path.join(os.path.dirname(PY), "kubectl")
TRAPS = {
    "FEATURE_NEW_UI": "yes",
    "LEGACY_SYNC": "on",
    "DEBUG_TOOLBAR": "off",
    "STRICT_MODE": "n",
    "UPLOAD_UMASK": "0755",
    "MAX_TOKENS": "1e3",
    "BATCH_SIZE": "1_000",
    "RETRY_WINDOW": "12:30",
    "COLOR_MASK": "0x1F",
    "FALLBACK_REGION": "~",
    "OPTIONAL_LIMIT": "null",
    "SCORE_CEILING": ".inf",
    "RELEASE_DATE": "2024-01-01",
    "API_VERSION": "2.10",
    "on": "enabled",
    "yes": "no",
}

# Valid Istio objects of the kinds the suite writes or may meet, a SPIRE
# resource (custom, skipped) and a core object.
# A waypoint Gateway as `ns create --mode ambient` writes it (with a selector listener, as an
# existing waypoint elsewhere has), and an HTTPRoute of the kind the namespace path reads.
GATEWAY_API_VALID = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: shop-mesh
  labels: {istio.io/waypoint-for: service}
spec:
  gatewayClassName: istio-waypoint
  listeners:
    - name: mesh
      port: 15008
      protocol: HBONE
      hostname: waypoint.example
      allowedRoutes:
        namespaces:
          from: Selector
          selector:
            matchExpressions: [{key: team, operator: In, values: [a]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: public, namespace: infra}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: web, port: 80, weight: 90}, {name: web, namespace: shop-mesh, port: 80, weight: 10}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""

ISTIO_VALID = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [api.shop.local]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api, api.shop.local]
  gateways: [shop-gateway, mesh]
  http:
  - route:
    - destination: {host: api.shop.svc.cluster.local, port: {number: 8080}}
      weight: 100
    timeout: 5s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api.shop.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 10s}
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 30s
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
    to: [{operation: {methods: [GET], ports: ["8080"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: shop}
spec:
  hosts: [payments.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
---
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata: {name: shop}
spec: {spiffeIDTemplate: "spiffe://example.org/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: shop}
data: {a: "1"}
"""

# A stand-in post-renderer: labels every object it sees and logs to stderr.
STAND_IN = """#!{python}
import re, sys
if sys.argv[1:2] != ["post-render"]:
    sys.stderr.write("stand-in: expected post-render, got %r\\n" % sys.argv[1:])
    sys.exit(2)
data = sys.stdin.read()
sys.stderr.write("stand-in: %d bytes\\n" % len(data))
sys.stdout.write(re.sub(r"(?m)^  labels:\\n", "  labels:\\n    selftest/post-rendered: \\"true\\"\\n", data))
"""


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def make_executable(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class SelfTest:
    def __init__(self, work: str) -> None:
        self.work = work
        self.passed = 0
        self.failed = 0

    def check(self, name: str, func: Callable[[], None]) -> None:
        try:
            func()
        except AssertionError as exc:
            self.failed += 1
            print(f"FAIL {name}: {exc}")
        except Exception:  # noqa: BLE001 - report any crash as a failure
            self.failed += 1
            print(f"FAIL {name}: crashed\n{traceback.format_exc()}")
        else:
            self.passed += 1
            print(f"ok   {name}")

    # -- charts -----------------------------------------------------------

    def render(self, chart: str, values: dict[str, Any] | None = None) -> str:
        cmd = [PY, os.path.join(HERE, "helm_render.py"), os.path.join(ROOT, "charts", chart), "demo", "pyairtable"]
        if values:
            cmd += ["--values", json.dumps(values)]
        proc = run(cmd)
        assert proc.returncode == 0, f"helm_render.py failed: {proc.stderr.strip()}"
        return proc.stdout

    def validate(self, text: str, name: str, expect_skips: int) -> None:
        path = os.path.join(self.work, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        proc = run([os.path.join(HERE, "validate.sh"), "--quiet", path])
        assert proc.returncode == 0, f"validation failed:\n{proc.stdout}{proc.stderr}"
        skips = proc.stdout.count("\nSKIP ") + proc.stdout.startswith("SKIP ")
        assert skips == expect_skips, f"expected {expect_skips} skipped objects:\n{proc.stdout}"

    def test_demo_platform(self) -> None:
        text = self.render("demo-platform")
        docs = [d for d in yaml.safe_load_all(text) if d]
        kinds = sorted({d["kind"] for d in docs})
        for kind in ("ConfigMap", "CronJob", "Deployment", "Ingress", "Job", "PodDisruptionBudget",
                     "Secret", "Service", "ServiceAccount", "StatefulSet"):
            assert kind in kinds, f"no {kind} rendered"
        deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
        assert deployments == {"frontend", "api-gateway", "mcp-server", "airtable-gateway", "llm-orchestrator",
                               "automation-services", "platform-services", "worker"}, deployments
        hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
        assert {(h["kind"], h["metadata"]["name"]) for h in hooks} == {("Secret", "db-migrate"), ("Job", "db-migrate")}
        self.validate(text, "demo-platform.yaml", expect_skips=0)

    def test_traps(self) -> None:
        text = self.render("demo-platform")
        docs = [d for d in yaml.safe_load_all(text) if d]
        config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "platform-config")
        data = config["data"]
        for key, value in TRAPS.items():
            assert key in data, f"key {key!r} missing or not a string key: {sorted(map(str, data))}"
            assert data[key] == value and isinstance(data[key], str), f"{key}: {data[key]!r}"
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()), data

    def test_cnpg_service(self) -> None:
        text = self.render("cnpg-service", {"networkPolicy": {"enabled": True}})
        docs = [d for d in yaml.safe_load_all(text) if d]
        kinds = sorted(d["kind"] for d in docs)
        assert kinds == ["Cluster", "Deployment", "NetworkPolicy", "Secret", "Service"], kinds
        secret = next(d for d in docs if d["kind"] == "Secret")
        assert secret["metadata"]["name"] == "demo-cnpg-service-db-credentials", secret["metadata"]["name"]
        self.validate(text, "cnpg-service.yaml", expect_skips=1)

    def test_roundtrip_tool(self) -> None:
        text = self.render("demo-platform")
        a = os.path.join(self.work, "a.yaml")
        b = os.path.join(self.work, "b.yaml")
        with open(a, "w", encoding="utf-8") as handle:
            handle.write(text)
        tool = os.path.join(HERE, "yaml11_roundtrip.py")
        proc = run([PY, tool, a, a])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with open(b, "w", encoding="utf-8") as handle:
            handle.write(text.replace('"FEATURE_NEW_UI": "yes"', '"FEATURE_NEW_UI": yes'))
        proc = run([PY, tool, a, b])
        assert proc.returncode == 1, proc.stdout
        assert "ConfigMap/platform-config: /data/FEATURE_NEW_UI: A has 'yes' (str), B has True (bool)" in proc.stdout, proc.stdout

    # -- Istio schemas ----------------------------------------------------

    def validate_text(self, text: str, name: str) -> subprocess.CompletedProcess[str]:
        path = os.path.join(self.work, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return run([os.path.join(HERE, "validate.sh"), path])

    def test_istio_schemas(self) -> None:
        valid = ISTIO_VALID
        proc = self.validate_text(valid, "istio-valid.yaml")
        assert proc.returncode == 0, f"valid Istio objects rejected:\n{proc.stdout}{proc.stderr}"
        for kind in ("VirtualService", "DestinationRule", "Gateway", "PeerAuthentication", "AuthorizationPolicy",
                     "ServiceEntry", "Sidecar"):
            assert f"/{kind} (@kubernetes-models/istio 3.0.1)" in proc.stdout, f"{kind} not validated:\n{proc.stdout}"
        assert "SKIP " in proc.stdout and "spire.spiffe.io/v1alpha1" in proc.stdout, proc.stdout
        assert proc.stdout.splitlines()[-1] == "validated 8 objects: 0 failed, 1 skipped (custom resources)", proc.stdout

        # Each broken copy fails, naming the document, the field and the schema's message.
        broken = {
            "connectTimeout: 10s": ("connectTimeout: 30", "destinationrule/api (networking.istio.io/v1)",
                                    "/spec/trafficPolicy/connectionPool/tcp/connectTimeout: must be string"),
            "timeout: 5s": ("timeout: 5", "virtualservice/api", "/spec/http/0/timeout: must be string"),
            "weight: 100": ("weight: \"100\"", "virtualservice/api", "/spec/http/0/route/0/weight: must be integer"),
            "mode: STRICT": ("mode: strict", "peerauthentication/default", "/spec/mtls/mode: must be equal to one"),
            "    outlierDetection:": ("    outlierDetecton:", "destinationrule/api",
                                     '/spec/trafficPolicy/outlierDetecton: unknown field "outlierDetecton"'),
            "kind: Sidecar": ("kind: SideCar", "sidecar/default", "no kind SideCar in networking.istio.io/v1"),
            "security.istio.io/v1\nkind: AuthorizationPolicy": (
                "security.istio.io/v2\nkind: AuthorizationPolicy", "authorizationpolicy/api",
                "no schema for security.istio.io/v2"),
        }
        for n, (good, (bad, what, message)) in enumerate(broken.items()):
            assert valid.count(good) == 1, good
            proc = self.validate_text(valid.replace(good, bad), f"istio-broken-{n}.yaml")
            assert proc.returncode == 1, f"{bad!r} accepted:\n{proc.stdout}"
            errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR ")]
            assert len(errors) == 1 and what in errors[0] and message in errors[0], f"{bad!r}:\n{proc.stdout}"
            assert proc.stdout.splitlines()[-1] == "validated 8 objects: 1 failed, 1 skipped (custom resources)", proc.stdout

        # The validator on its own reads YAML too; without the Istio schemas nothing passes.
        path = os.path.join(self.work, "istio-valid.yaml")
        node = shutil.which("node")
        assert node, "node not on PATH"
        proc = run([node, os.path.join(HERE, "validate_istio.mjs"), "--quiet", path])
        assert proc.returncode == 0 and proc.stdout == "validated 7 Istio and Gateway API objects: 0 failed, 2 skipped (neither)\n", proc.stdout + proc.stderr
        proc = run([PY, os.path.join(HERE, "validate_manifests.py"), "--quiet", "--node-dir", self.work, path])
        assert proc.returncode == 1 and proc.stdout.count("ERROR ") == 7 and "setup-node.sh" in proc.stdout, proc.stdout

    # -- Gateway API schemas ----------------------------------------------

    def test_gateway_api_schemas(self) -> None:
        valid = GATEWAY_API_VALID
        proc = self.validate_text(valid, "gateway-api-valid.yaml")
        assert proc.returncode == 0, f"valid Gateway API objects rejected:\n{proc.stdout}{proc.stderr}"
        for kind in ("Gateway", "HTTPRoute"):
            assert f"gateway.networking.k8s.io/v1/{kind} (@kubernetes-models/gateway-api 2.0.0)" in proc.stdout, f"{kind} not validated:\n{proc.stdout}"
        assert proc.stdout.splitlines()[-1] == "validated 3 objects: 0 failed, 0 skipped (custom resources)", proc.stdout
        broken = {
            "port: 15008": ("port: \"15008\"", "gateway/waypoint", "/spec/listeners/0/port: must be integer"),
            "from: Selector": ("from: Elsewhere", "gateway/waypoint", "/spec/listeners/0/allowedRoutes/namespaces/from: must be equal to one"),
            "  gatewayClassName: istio-waypoint": ("  gatewayClass: istio-waypoint", "gateway/waypoint", "/spec: must have required property gatewayClassName"),
            "      hostname: waypoint.example": ("      hostnme: waypoint.example", "gateway/waypoint", '/spec/listeners/0/hostnme: unknown field "hostnme"'),
            "kind: HTTPRoute": ("kind: HttpRoute", "httproute/web", "no kind HttpRoute in gateway.networking.k8s.io/v1"),
        }
        for n, (good, (bad, what, message)) in enumerate(broken.items()):
            assert valid.count(good) == 1, good
            proc = self.validate_text(valid.replace(good, bad), f"gateway-api-broken-{n}.yaml")
            assert proc.returncode == 1, f"{bad!r} accepted:\n{proc.stdout}"
            errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR ")]
            assert len(errors) == 1 and what in errors[0] and message in errors[0], f"{bad!r}:\n{proc.stdout}"

    # -- Helm plugin ------------------------------------------------------

    def test_helm_plugin(self) -> None:
        bindir = os.path.join(self.work, "bin")
        os.makedirs(bindir, exist_ok=True)
        make_executable(os.path.join(bindir, "kubectl-mesh_migrate"), STAND_IN.format(python=PY))
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        expected_calls = {"combined": 1, "separate": 2, "nohooks": 1}
        for strategy, calls in expected_calls.items():
            proc = run(
                [PY, os.path.join(HERE, "helm_install.py"), os.path.join(ROOT, "charts", "demo-platform"),
                 "demo", "pyairtable", "--post-renderer", "mesh-migrate", "--strategy", strategy,
                 "--plugins-dir", os.path.join(ROOT, "charts", "helm-plugin")],
                env=env,
            )
            assert proc.returncode == 0, f"{strategy}: {proc.stderr.strip()}"
            result = json.loads(proc.stdout)
            invocations = result["post_renderer_invocations"]
            assert len(invocations) == calls, f"{strategy}: {len(invocations)} invocations"
            for inv in invocations:
                assert inv["argv"] == ["kubectl-mesh_migrate", "post-render"], inv["argv"]
                assert inv["exit_code"] == 0 and inv["stderr"].startswith("stand-in:"), inv["stderr"]
                assert "# Source:" not in inv["stdin"], f"{strategy}: stdin has # Source lines"
                assert "postrenderer.helm.sh/postrender-filename: 'demo-platform/templates/" in inv["stdin"]
            assert "selftest/post-rendered" in result["manifest"], f"{strategy}: output not used"
            assert "postrender-filename" not in result["manifest"], f"{strategy}: annotation left in manifest"
            assert [h["name"] for h in result["hooks"]] == ["db-migrate", "db-migrate"], result["hooks"]
            post_rendered_hooks = all("selftest/post-rendered" in h["manifest"] for h in result["hooks"])
            assert post_rendered_hooks == (strategy != "nohooks"), f"{strategy}: hook post-rendering"

    # -- krew -------------------------------------------------------------

    def test_krew_manifests(self) -> None:
        proc = run([PY, os.path.join(ROOT, "krew-manifests", "validate.py")])
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_release_and_completion(self) -> None:
        bins = os.path.join(self.work, "relbin")
        os.makedirs(bins, exist_ok=True)
        for plugin in ("mesh-migrate", "spire-check", "dbiso"):
            make_executable(
                os.path.join(bins, f"kubectl-{plugin}"),
                "#!/bin/sh\n"
                'if [ "$1" = __complete ]; then shift; '
                'printf "precheck\\tCheck readiness\\npost-render\\n:4\\n"; echo "$#:$*" >&2; exit 0; fi\n'
                f'echo "{plugin} $*"\n',
            )
        outs = []
        for attempt in ("one", "two"):
            out = os.path.join(self.work, f"release-{attempt}")
            proc = run(
                [os.path.join(ROOT, "krew-manifests", "release.sh"), "v0.1.0", "--no-build", "--bin-dir", bins,
                 "--target", "x86_64-unknown-linux-gnu", "--out-dir", out],
                env=dict(os.environ, VALIDATE_PYTHON=PY),
            )
            assert proc.returncode == 0, proc.stderr
            outs.append(out)
        for name in ("mesh-migrate_linux_amd64.tar.gz", "dbiso.yaml"):
            with open(os.path.join(outs[0], name), "rb") as f1, open(os.path.join(outs[1], name), "rb") as f2:
                assert f1.read() == f2.read(), f"{name} is not reproducible"
        with open(os.path.join(outs[0], "mesh-migrate.yaml"), encoding="utf-8") as handle:
            manifest = yaml.safe_load(handle)
        digests = {(p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"]): p["sha256"]
                   for p in manifest["spec"]["platforms"]}
        assert digests[("linux", "amd64")] != "0" * 64 and digests[("darwin", "arm64")] == "0" * 64, digests

        # A krew-like layout: the store directory, the PATH link krew makes,
        # and the completion helper linked as the caveats say.
        krew = os.path.join(self.work, "krew")
        store = os.path.join(krew, "store", "mesh-migrate", "v0.1.0")
        krew_bin = os.path.join(krew, "bin")
        os.makedirs(store)
        os.makedirs(krew_bin)
        proc = run(["tar", "xzf", os.path.join(outs[0], "mesh-migrate_linux_amd64.tar.gz"), "-C", store])
        assert proc.returncode == 0, proc.stderr
        assert sorted(os.listdir(store)) == ["LICENSE", "kubectl-mesh-migrate", "kubectl_complete-mesh_migrate"]
        os.symlink(os.path.join(store, "kubectl-mesh-migrate"), os.path.join(krew_bin, "kubectl-mesh_migrate"))
        os.symlink(os.path.join(store, "kubectl_complete-mesh_migrate"),
                   os.path.join(krew_bin, "kubectl_complete-mesh_migrate"))
        env = dict(os.environ, PATH=krew_bin + os.pathsep + os.environ.get("PATH", ""))
        proc = run([KUBECTL, "mesh-migrate", "hello"], env=env)
        assert proc.stdout.strip() == "mesh-migrate hello", proc.stdout + proc.stderr
        proc = run([KUBECTL, "__complete", "mesh-migrate", "pre", ""], env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["precheck\tCheck readiness", "post-render", ":4"], proc.stdout
        assert "2:pre " in proc.stderr, f"helper did not pass the words through: {proc.stderr}"


def main() -> int:
    work = tempfile.mkdtemp(prefix="selftest-")
    try:
        suite = SelfTest(work)
        suite.check("demo-platform renders and validates", suite.test_demo_platform)
        suite.check("demo-platform YAML 1.1 traps stay strings", suite.test_traps)
        suite.check("cnpg-service renders and validates", suite.test_cnpg_service)
        suite.check("Istio objects are validated against Istio's CRD schemas", suite.test_istio_schemas)
        suite.check("Gateway API objects are validated against Gateway API's CRD schemas", suite.test_gateway_api_schemas)
        suite.check("yaml11_roundtrip.py detects lost quotes", suite.test_roundtrip_tool)
        suite.check("Helm 4 runs the mesh-migrate post-renderer plugin", suite.test_helm_plugin)
        suite.check("krew manifests validate", suite.test_krew_manifests)
        suite.check("release.sh packs; kubectl runs the completion helper", suite.test_release_and_completion)
        print(f"selftest: {suite.passed} passed, {suite.failed} failed")
        return 1 if suite.failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
