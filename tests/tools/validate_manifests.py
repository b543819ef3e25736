#!/usr/bin/env python3
"""Strict schema validation of Kubernetes manifests against Kubernetes 1.37, Istio's and Gateway API's CRDs.

usage: validate_manifests.py [-k VERSION] [--quiet] [--node-dir DIR] FILE... ("-" = stdin)

Uses kubernetes-validate's own loader and validator, the same code as
`kubernetes-validate --strict -k 1.37.0`, with these rules on top:

* a document whose API group is a built-in Kubernetes group ("", apps,
  batch, *.k8s.io, ...) must have an upstream schema: a missing schema there
  means a misspelt kind or a removed API version, and fails;
* a document of an Istio group (istio.io, *.istio.io) or a Gateway API group
  (gateway.networking.k8s.io, gateway.networking.x-k8s.io) is validated
  against those CRDs' schemas (npm @kubernetes-models/istio and
  @kubernetes-models/gateway-api, installed by setup-node.sh) by
  validate_istio.mjs, as JSON of what this loader read, so both validators
  see the same YAML 1.1 values. Unknown fields fail there too, and so does a
  group, version or kind the package has no schema for;
* a document of any other group (SPIRE, CloudNativePG, ... custom
  resources) is reported as SKIP and not validated. kubernetes-validate keys
  its schemas by the first label of the group only, so it would otherwise
  check e.g. a networking.istio.io/v1 object against networking.k8s.io/v1
  schemas if the kinds happened to match.

Output: one "OK", "SKIP" or "ERROR" line per document (an Istio document
with several schema errors gets one ERROR line each), naming FILE#N (N
counts the documents of the file from 1), then a summary
"validated N objects: N failed, N skipped (custom resources)".
Exit 1 if anything failed, 2 if the Kubernetes version is not supported.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import yaml
from kubernetes_validate import utils as kv

# API groups served by kube-apiserver itself (Kubernetes 1.37).
BUILTIN_GROUPS = {
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
}


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load(filename: str) -> list[tuple[int, Any]]:
    """The non-empty documents of a file as (number from 1, document)."""
    if filename == "-":
        text = sys.stdin.read()
    else:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    # Same loader settings as kubernetes-validate (YAML 1.1, '=' values as strings).
    yaml.SafeLoader.add_constructor("tag:yaml.org,2002:value", kv.construct_value)
    return [(n, doc) for n, doc in enumerate(yaml.load_all(text, Loader=yaml.SafeLoader), 1) if doc]


def label(doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"<{type(doc).__name__}>"
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    return f"{str(doc.get('kind', '<no kind>')).lower()}/{name}"


def is_istio(group: str) -> bool:
    """Whether validate_istio.mjs has the schemas of the group: Istio's, or Gateway API's."""
    return group == "istio.io" or group.endswith(".istio.io") or group in ("gateway.networking.k8s.io", "gateway.networking.x-k8s.io")


def json_default(value: Any) -> Any:
    """Values PyYAML builds that JSON lacks, as the strings Kubernetes would see."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} value {value!r} has no JSON form")


def validate_istio(docs: list[Any], node_dir: str, lax: bool) -> list[dict[str, Any]]:
    """validate_istio.mjs --batch on the documents: one {status, schema, errors} each."""
    results: list[dict[str, Any] | None] = [None] * len(docs)
    encoded: list[str] = []
    positions: list[int] = []
    for i, doc in enumerate(docs):
        try:
            encoded.append(json.dumps(doc, default=json_default, allow_nan=False))
            positions.append(i)
        except (TypeError, ValueError) as exc:
            results[i] = {"status": "ERROR", "schema": None, "errors": [f"not representable as JSON: {exc}"]}
    if positions:
        payload = '{"documents": [' + ", ".join('{"object": ' + e + "}" for e in encoded) + "]}"
        node = os.environ.get("MESHMOVE_NODE") or shutil.which("node")
        failure = None
        if not node:
            failure = "node not found on PATH (the Istio schemas need Node.js; see tests/tools/setup-node.sh)"
        else:
            cmd = [node, os.path.join(HERE, "validate_istio.mjs"), "--batch", "--node-dir", node_dir]
            proc = subprocess.run(cmd + (["--lax"] if lax else []), input=payload, capture_output=True, text=True, check=False)
            try:
                answers = json.loads(proc.stdout) if proc.returncode == 0 else None
            except ValueError:
                answers = None
            if not isinstance(answers, list) or len(answers) != len(positions):
                failure = f"validate_istio.mjs failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            else:
                for i, answer in zip(positions, answers):
                    results[i] = answer
        if failure:
            for i in positions:
                results[i] = {"status": "ERROR", "schema": None, "errors": [failure]}
    return [r for r in results if r is not None]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="validate_manifests.py", description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", default="1.37.0")
    parser.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    parser.add_argument("--node-dir", default=os.environ.get("MESHMOVE_TOOLS_NODE_DIR") or os.path.join(ROOT, "target", "node-tools"),
                        help="where setup-node.sh installed the Istio schemas (default target/node-tools)")
    parser.add_argument("--istio-lax", action="store_true", help="accept fields Istio's schemas do not declare")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    # Lines in document order; an Istio document holds its place until the one batched call to
    # validate_istio.mjs answers: (where, api_version, index into istio_docs).
    lines: list[str | tuple[str, str, int]] = []
    istio_docs: list[Any] = []
    passed = failed = skipped = 0
    for filename in args.files:
        try:
            docs = load(filename)
        except (OSError, yaml.YAMLError) as exc:
            lines.append(f"ERROR {filename}: cannot read YAML: {exc}")
            failed += 1
            continue
        for number, doc in docs:
            what = f"{filename}#{number} {label(doc)}"
            if not isinstance(doc, dict) or not isinstance(doc.get("apiVersion"), str) or not doc.get("kind"):
                lines.append(f"ERROR {what}: not a Kubernetes object (apiVersion/kind missing)")
                failed += 1
                continue
            api_version = doc["apiVersion"]
            group = api_version.rpartition("/")[0] if "/" in api_version else ""
            if is_istio(group):
                lines.append((what, api_version, len(istio_docs)))
                istio_docs.append(doc)
                continue
            if group not in BUILTIN_GROUPS:
                lines.append(f"SKIP {what} ({api_version}): custom resource, no upstream schema")
                skipped += 1
                continue
            try:
                version = kv.validate(doc, args.kubernetes_version, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                lines.append(f"ERROR {what} against {exc.version}: {path}: {exc.message}")
                failed += 1
                continue
            except kv.SchemaNotFoundError as exc:
                lines.append(f"ERROR {what}: {exc.message} (built-in API group)")
                failed += 1
                continue
            except kv.VersionNotSupportedError as exc:
                print(f"ERROR kubernetes-validate does not support Kubernetes {exc.version}")
                return 2
            passed += 1
            if not args.quiet:
                lines.append(f"OK {what} against {version}")

    istio = validate_istio(istio_docs, args.node_dir, args.istio_lax) if istio_docs else []
    for line in lines:
        if isinstance(line, str):
            print(line)
            continue
        what, api_version, i = line
        result = istio[i]
        if result.get("status") == "OK":
            passed += 1
            if not args.quiet:
                print(f"OK {what} against {result['schema']}")
            continue
        failed += 1
        against = f" against {result['schema']}" if result.get("schema") else ""
        for error in result.get("errors") or [f"unexpected answer {result!r}"]:
            print(f"ERROR {what} ({api_version}){against}: {error}")
    print(f"validated {passed + failed} objects: {failed} failed, {skipped} skipped (custom resources)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
