#!/usr/bin/env python3
"""Validate krew plugin manifests.

usage: validate.py [--release] [MANIFEST.yaml ...]
       (default: mesh-migrate.yaml, spire-check.yaml and dbiso.yaml next to this script)

Applies krew's own structural rules (what `kubectl krew install --manifest`
and the krew-index checks enforce):

  * apiVersion krew.googlecontainertools.github.com/v1alpha2, kind Plugin;
  * the file is <name>.yaml, metadata.name equals <name>, and <name> matches
    ^[A-Za-z0-9_-]+$ and is not a reserved Windows file name;
  * spec.version is a semantic version with a leading "v" (v1.2.3[-pre][+build]);
  * spec.shortDescription is set and has no line break;
  * spec.platforms is not empty; each platform has uri, a sha256 of 64
    lowercase hex digits, bin, non-empty files with from/to, and a selector
    whose matchLabels/matchExpressions are non-empty and only use os/arch;
  * every platform selects at least one supported os/arch pair and no pair is
    selected by two platforms;
  * line lengths: shortDescription <= 70, description and caveats <= 80.

and this project's release policy on top:

  * unknown fields are errors (krew ignores them silently);
  * the platforms cover exactly linux, darwin and windows x amd64 and arm64;
  * bin is put in place by one of the files entries, and ends in .exe on windows;
  * uri is https and names the archive <name>_<os>_<arch>.tar.gz (or .zip);
  * with --release, the all-zero sha256 placeholder is rejected;
  * the caveats name every RBAC manifest of the plugin (rbac/<name>*.yaml next
    to this script) and no other of its name, and link that directory at the
    release's tag.

Prints "<file>: ok" per valid manifest on stdout. Otherwise prints
"<file>: <field>: <problem>" lines on stderr and exits 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

import yaml

API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
WINDOWS_FORBIDDEN = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {
    f"lpt{i}" for i in range(1, 10)
}
SHA256 = re.compile(r"^[a-f0-9]{64}$")
PLACEHOLDER_SHA256 = "0" * 64
RBAC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rbac")
RBAC_LINK = "https://github.com/meshmove/meshmove/tree/{version}/krew-manifests/rbac"
# Semantic version with a mandatory leading "v" (krew: "v" + k8s ParseSemantic).
SEMVER = re.compile(
    r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
SUPPORTED = [(o, a) for o in ("linux", "darwin", "windows") for a in ("amd64", "arm64", "386", "arm")]
REQUIRED = {(o, a) for o in ("linux", "darwin", "windows") for a in ("amd64", "arm64")}

TOP_FIELDS = {"apiVersion", "kind", "metadata", "spec"}
META_FIELDS = {"name", "annotations", "labels"}
SPEC_FIELDS = {"version", "homepage", "shortDescription", "description", "caveats", "platforms"}
PLATFORM_FIELDS = {"selector", "uri", "sha256", "bin", "files", "license"}
SELECTOR_FIELDS = {"matchLabels", "matchExpressions"}
EXPRESSION_FIELDS = {"key", "operator", "values"}
FILE_FIELDS = {"from", "to"}


class Checker:
    def __init__(self, filename: str, release: bool) -> None:
        self.filename = filename
        self.release = release
        self.errors: list[str] = []

    def error(self, field: str, message: str) -> None:
        self.errors.append(f"{self.filename}: {field}: {message}")

    def unknown(self, data: dict[str, Any], allowed: set[str], field: str) -> None:
        for key in data:
            if key not in allowed:
                where = f"{field}.{key}" if field else str(key)
                self.error(where, f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def string(self, data: dict[str, Any], key: str, field: str, required: bool = True) -> str:
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.error(field, "is required")
            return ""
        if not isinstance(value, str):
            self.error(field, f"must be a string, not {type(value).__name__}")
            return ""
        return value

    def line_length(self, text: str, limit: int, field: str) -> None:
        for number, line in enumerate(text.split("\n"), start=1):
            # krew tolerates long lines that are a single word (e.g. a URL).
            if len(line) > limit and " " in line.strip():
                self.error(field, f"line {number} is {len(line)} characters long (limit {limit})")

    def check(self, doc: Any, name: str) -> None:
        if not isinstance(doc, dict):
            self.error("(document)", "must be a mapping")
            return
        self.unknown(doc, TOP_FIELDS, "")
        if doc.get("apiVersion") != API_VERSION:
            self.error("apiVersion", f"must be {API_VERSION!r}, not {doc.get('apiVersion')!r}")
        if doc.get("kind") != "Plugin":
            self.error("kind", f"must be 'Plugin', not {doc.get('kind')!r}")
        if not SAFE_NAME.match(name) or name.lower() in WINDOWS_FORBIDDEN:
            self.error("metadata.name", f"file name {name!r} is not an allowed plugin name")
        meta = doc.get("metadata")
        if not isinstance(meta, dict):
            self.error("metadata", "must be a mapping with name")
        else:
            self.unknown(meta, META_FIELDS, "metadata")
            if meta.get("name") != name:
                self.error("metadata.name", f"must equal the file name {name!r}, not {meta.get('name')!r}")
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            self.error("spec", "must be a mapping")
            return
        self.unknown(spec, SPEC_FIELDS, "spec")

        version = self.string(spec, "version", "spec.version")
        if version and not SEMVER.match(version):
            self.error("spec.version", f"{version!r} is not a semantic version with a leading 'v'")
        short = self.string(spec, "shortDescription", "spec.shortDescription")
        if "\n" in short or "\r" in short:
            self.error("spec.shortDescription", "must not contain line breaks")
        self.line_length(short, 70, "spec.shortDescription")
        self.line_length(self.string(spec, "description", "spec.description", False), 80, "spec.description")
        caveats = self.string(spec, "caveats", "spec.caveats", False)
        self.line_length(caveats, 80, "spec.caveats")
        self.check_rbac(caveats, name, version)
        homepage = self.string(spec, "homepage", "spec.homepage", False)
        if homepage and not homepage.startswith("https://"):
            self.error("spec.homepage", "must be an https URL")

        platforms = spec.get("platforms")
        if not isinstance(platforms, list) or not platforms:
            self.error("spec.platforms", "must be a non-empty list")
            return
        selected: dict[tuple[str, str], int] = {}
        for index, platform in enumerate(platforms):
            field = f"spec.platforms[{index}]"
            if not isinstance(platform, dict):
                self.error(field, "must be a mapping")
                continue
            pairs = self.check_platform(platform, field, name)
            if not pairs:
                self.error(f"{field}.selector", "selects none of the supported os/arch pairs")
            for pair in pairs:
                if pair in selected:
                    self.error(
                        f"{field}.selector",
                        f"overlaps spec.platforms[{selected[pair]}]: both select os={pair[0]} arch={pair[1]}",
                    )
                else:
                    selected[pair] = index
        missing = sorted(REQUIRED - set(selected))
        if missing:
            self.error("spec.platforms", "no platform for " + ", ".join(f"{o}/{a}" for o, a in missing))
        extra = sorted(set(selected) - REQUIRED)
        if extra:
            self.error("spec.platforms", "unexpected platform for " + ", ".join(f"{o}/{a}" for o, a in extra))

    def check_platform(self, platform: dict[str, Any], field: str, name: str) -> list[tuple[str, str]]:
        self.unknown(platform, PLATFORM_FIELDS, field)
        uri = self.string(platform, "uri", f"{field}.uri")
        sha = self.string(platform, "sha256", f"{field}.sha256")
        if sha and not SHA256.match(sha):
            self.error(f"{field}.sha256", f"{sha!r} is not 64 lowercase hex digits")
        elif sha == PLACEHOLDER_SHA256 and self.release:
            self.error(f"{field}.sha256", "is still the all-zero placeholder")
        bin_path = self.string(platform, "bin", f"{field}.bin")

        pairs = self.check_selector(platform.get("selector"), f"{field}.selector")
        oses = {o for o, _ in pairs}
        arches = {a for _, a in pairs}

        files = platform.get("files")
        targets: list[tuple[str, str]] = []
        if files is not None:
            if not isinstance(files, list) or not files:
                self.error(f"{field}.files", "must be a non-empty list when given")
            else:
                for i, op in enumerate(files):
                    op_field = f"{field}.files[{i}]"
                    if not isinstance(op, dict):
                        self.error(op_field, "must be a mapping with from and to")
                        continue
                    self.unknown(op, FILE_FIELDS, op_field)
                    src = self.string(op, "from", f"{op_field}.from")
                    dst = self.string(op, "to", f"{op_field}.to")
                    if src and dst:
                        targets.append((src, dst))
        else:
            self.error(f"{field}.files", "is required by this project's release policy")

        if bin_path:
            if not any(self.places(src, dst, bin_path) for src, dst in targets):
                self.error(f"{field}.bin", f"{bin_path!r} is not put in place by any files entry")
            if oses == {"windows"} and not bin_path.endswith(".exe"):
                self.error(f"{field}.bin", "must end in .exe for windows")
            if oses and "windows" not in oses and bin_path.endswith(".exe"):
                self.error(f"{field}.bin", "must not end in .exe outside windows")

        if uri:
            if not uri.startswith("https://"):
                self.error(f"{field}.uri", "must be an https URL")
            if len(oses) == 1 and len(arches) == 1:
                (os_name,), (arch,) = oses, arches
                archive = uri.rsplit("/", 1)[-1]
                expected = f"{name}_{os_name}_{arch}"
                if archive not in (f"{expected}.tar.gz", f"{expected}.zip"):
                    self.error(f"{field}.uri", f"archive {archive!r} should be {expected}.tar.gz")
        return pairs

    def check_rbac(self, caveats: str, name: str, version: str) -> None:
        """The plugin's least-privilege RBAC manifests are named in the caveats, linked at the tag."""
        shipped = sorted(f for f in os.listdir(RBAC_DIR) if f.startswith(name) and f.endswith(".yaml")) if os.path.isdir(RBAC_DIR) else []
        named = set(re.findall(r"[A-Za-z0-9_.-]+\.yaml", caveats))
        for f in shipped:
            if f not in named:
                self.error("spec.caveats", f"does not name the RBAC manifest krew-manifests/rbac/{f}")
        for f in sorted(named):
            if f.startswith(name) and f not in shipped:
                self.error("spec.caveats", f"names {f}, which krew-manifests/rbac/ does not have")
        link = RBAC_LINK.format(version=version)
        if shipped and link not in caveats.split():
            self.error("spec.caveats", f"does not link the RBAC manifests at the release's tag: {link}")

    @staticmethod
    def places(src: str, dst: str, bin_path: str) -> bool:
        """Whether the file operation from src to dst yields bin_path."""
        dst = dst.rstrip("/") or "."
        if dst == bin_path:
            return True
        base = os.path.basename(src.rstrip("/"))
        target = base if dst == "." else f"{dst}/{base}"
        return target == bin_path or ("*" in base and os.path.dirname(target) == os.path.dirname(bin_path))

    def check_selector(self, selector: Any, field: str) -> list[tuple[str, str]]:
        if not isinstance(selector, dict):
            self.error(field, "is required (nil selectors are not supported)")
            return []
        self.unknown(selector, SELECTOR_FIELDS, field)
        labels = selector.get("matchLabels")
        expressions = selector.get("matchExpressions")
        if labels is None and not expressions:
            self.error(field, "empty selector is not supported")
            return []
        keys: list[str] = []
        if labels is not None:
            if not isinstance(labels, dict) or not labels:
                self.error(f"{field}.matchLabels", "specified but empty")
                labels = {}
            keys.extend(labels)
        if expressions is not None:
            if not isinstance(expressions, list) or not expressions:
                self.error(f"{field}.matchExpressions", "specified but empty")
                expressions = []
            for i, expr in enumerate(expressions):
                if not isinstance(expr, dict):
                    self.error(f"{field}.matchExpressions[{i}]", "must be a mapping")
                    continue
                self.unknown(expr, EXPRESSION_FIELDS, f"{field}.matchExpressions[{i}]")
                keys.append(expr.get("key"))
                if expr.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
                    self.error(f"{field}.matchExpressions[{i}].operator", f"unknown operator {expr.get('operator')!r}")
        for key in keys:
            if key not in ("os", "arch"):
                self.error(field, f"key {key!r} not supported (only os and arch)")
        return [pair for pair in SUPPORTED if self.matches(labels or {}, expressions or [], pair)]

    @staticmethod
    def matches(labels: dict[str, Any], expressions: list[Any], pair: tuple[str, str]) -> bool:
        values = {"os": pair[0], "arch": pair[1]}
        for key, value in labels.items():
            if values.get(key) != value:
                return False
        for expr in expressions:
            if not isinstance(expr, dict):
                return False
            key, op, vals = expr.get("key"), expr.get("operator"), expr.get("values") or []
            present = key in values
            if op == "In" and (not present or values[key] not in vals):
                return False
            if op == "NotIn" and present and values[key] in vals:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


def validate_file(path: str, release: bool) -> list[str]:
    filename = os.path.basename(path)
    checker = Checker(path, release)
    if not filename.endswith(".yaml"):
        checker.error("(file)", "krew manifests must have the .yaml extension")
        return checker.errors
    try:
        with open(path, encoding="utf-8") as handle:
            docs = [d for d in yaml.safe_load_all(handle) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        checker.error("(file)", f"cannot read YAML: {exc}")
        return checker.errors
    if len(docs) != 1:
        checker.error("(file)", f"must hold exactly one document, found {len(docs)}")
        return checker.errors
    checker.check(docs[0], filename[: -len(".yaml")])
    return checker.errors


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="validate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--release", action="store_true", help="reject placeholder sha256 values")
    parser.add_argument("manifests", nargs="*")
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    paths = args.manifests or [os.path.join(here, f"{n}.yaml") for n in ("mesh-migrate", "spire-check", "dbiso")]
    failed = False
    for path in paths:
        errors = validate_file(path, args.release)
        for line in errors:
            print(line, file=sys.stderr)
        if errors:
            failed = True
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
