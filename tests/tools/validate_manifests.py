#!/usr/bin/env python3
"""Strict schema validation of Kubernetes manifests against Kubernetes 1.37.

usage: validate_manifests.py [-k VERSION] [--quiet] FILE... ("-" = stdin)

Uses kubernetes-validate's own loader and validator, the same code as
`kubernetes-validate --strict -k 1.37.0`, with one rule on top:

* a document whose API group is a built-in Kubernetes group ("", apps,
  batch, *.k8s.io, ...) must have an upstream schema: a missing schema there
  means a misspelt kind or a removed API version, and fails;
* a document of any other group (Istio, SPIRE, CloudNativePG, ... custom
  resources) is reported as SKIP and not validated. kubernetes-validate keys
  its schemas by the first label of the group only, so it would otherwise
  check e.g. a networking.istio.io/v1 object against networking.k8s.io/v1
  schemas if the kinds happened to match.

Output: one "OK", "SKIP" or "ERROR" line per document, then a summary
"validated N objects: N failed, N skipped (custom resources)".
Exit 1 if anything failed, 2 if the Kubernetes version is not supported.
"""

from __future__ import annotations

import argparse
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


def load(filename: str) -> list[Any]:
    if filename == "-":
        text = sys.stdin.read()
    else:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    # Same loader settings as kubernetes-validate (YAML 1.1, '=' values as strings).
    yaml.SafeLoader.add_constructor("tag:yaml.org,2002:value", kv.construct_value)
    return [doc for doc in yaml.load_all(text, Loader=yaml.SafeLoader) if doc]


def label(doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"<{type(doc).__name__}>"
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    return f"{str(doc.get('kind', '<no kind>')).lower()}/{name}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="validate_manifests.py", description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", default="1.37.0")
    parser.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    passed = failed = skipped = 0
    for filename in args.files:
        try:
            docs = load(filename)
        except (OSError, yaml.YAMLError) as exc:
            print(f"ERROR {filename}: cannot read YAML: {exc}")
            failed += 1
            continue
        for doc in docs:
            what = label(doc)
            if not isinstance(doc, dict) or not isinstance(doc.get("apiVersion"), str) or not doc.get("kind"):
                print(f"ERROR {filename} {what}: not a Kubernetes object (apiVersion/kind missing)")
                failed += 1
                continue
            api_version = doc["apiVersion"]
            group = api_version.rpartition("/")[0] if "/" in api_version else ""
            if group not in BUILTIN_GROUPS:
                print(f"SKIP {filename} {what} ({api_version}): custom resource, no upstream schema")
                skipped += 1
                continue
            try:
                version = kv.validate(doc, args.kubernetes_version, strict=True)
            except kv.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                print(f"ERROR {filename} {what} against {exc.version}: {path}: {exc.message}")
                failed += 1
                continue
            except kv.SchemaNotFoundError as exc:
                print(f"ERROR {filename} {what}: {exc.message} (built-in API group)")
                failed += 1
                continue
            except kv.VersionNotSupportedError as exc:
                print(f"ERROR kubernetes-validate does not support Kubernetes {exc.version}")
                return 2
            passed += 1
            if not args.quiet:
                print(f"OK {filename} {what} against {version}")
    print(f"validated {passed + failed} objects: {failed} failed, {skipped} skipped (custom resources)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
