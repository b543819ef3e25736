#!/usr/bin/env python3
"""Check that a transformed manifest stream still means what the input meant.

usage: yaml11_roundtrip.py A B [--ignore-injected] [--ignore [SELECTOR:]POINTER ...]
                               [--allow-removed-docs]

Both streams are loaded with PyYAML's safe_load_all, which follows YAML 1.1
like Helm and kubectl do: an unquoted yes/on/0755/1e3/~/2024-01-01 becomes a
bool, number, null or date. Every document of A must reappear in B (matched by
apiVersion, kind, namespace and name; by position when a document has no
kind/name) with equal values *and equal types*, so a string that lost its
quotes is reported.

  --ignore-injected     mapping keys, list items and whole documents that
                        exist only in B are accepted (what a post-renderer
                        adds); everything A has must still be in B, unchanged.
  --ignore P            differences at or below P are accepted. P is a JSON
                        pointer into a document ("/metadata/labels/app",
                        "~1" escapes "/", "~0" escapes "~"); a segment "*"
                        matches any key or index. Prefix "Kind:" or
                        "Kind/name:" to limit it to some documents.
  --allow-removed-docs  documents of A that are missing from B are accepted.

Lists whose items are all mappings with a "name" (containers, ports, env,
volumes) are matched by name, other lists by position; paths name A's index.
"-" reads a stream from stdin. Exit 0 when equivalent, 1 with one line per
difference ("<document>: <path>: <what>") otherwise, 2 on usage or parse errors.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml


class Ignore:
    def __init__(self, spec: str) -> None:
        self.kind = self.name = None
        pointer = spec
        if not spec.startswith("/"):
            selector, sep, pointer = spec.partition(":")
            if not sep or not pointer.startswith("/"):
                raise ValueError(f"--ignore {spec!r}: expected [Kind[/name]:]/json/pointer")
            self.kind, _, name = selector.partition("/")
            self.name = name or None
        self.segments = [s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:]]

    def applies(self, doc_kind: str, doc_name: str, path: list[str]) -> bool:
        if self.kind not in (None, "*") and self.kind != doc_kind:
            return False
        if self.name not in (None, "*") and self.name != doc_name:
            return False
        if len(path) < len(self.segments):
            return False
        return all(seg in ("*", part) for seg, part in zip(self.segments, path))


def escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def pointer(path: list[str]) -> str:
    return "/" + "/".join(escape(p) for p in path) if path else "(document root)"


def describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def same_scalar(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        # datetime is a subclass of date: still a different YAML type.
        return False
    return bool(a == b)


class Comparer:
    def __init__(self, ignores: list[Ignore], ignore_injected: bool) -> None:
        self.ignores = ignores
        self.ignore_injected = ignore_injected
        self.errors: list[str] = []
        self.doc = ""
        self.kind = ""
        self.name = ""

    def ignored(self, path: list[str]) -> bool:
        return any(i.applies(self.kind, self.name, path) for i in self.ignores)

    def report(self, path: list[str], message: str) -> None:
        if not self.ignored(path):
            self.errors.append(f"{self.doc}: {pointer(path)}: {message}")

    def compare(self, a: Any, b: Any, path: list[str]) -> None:
        if self.ignored(path):
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key, value in a.items():
                sub = path + [str(key)]
                if key not in b:
                    self.report(sub, f"missing in B (A has {describe(value)})")
                else:
                    self.compare(value, b[key], sub)
            for key in b:
                if key not in a and not self.ignore_injected:
                    self.report(path + [str(key)], f"only in B: {describe(b[key])}")
            return
        if isinstance(a, list) and isinstance(b, list):
            self.compare_lists(a, b, path)
            return
        if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
            self.report(path, f"A has {describe(a)}, B has {describe(b)}")
            return
        if not same_scalar(a, b):
            self.report(path, f"A has {describe(a)}, B has {describe(b)}")

    def compare_lists(self, a: list[Any], b: list[Any], path: list[str]) -> None:
        def named(items: list[Any]) -> bool:
            return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)

        if named(a) and (named(b) or not b):
            names_a = [item["name"] for item in a]
            names_b = [item["name"] for item in b]
            if len(set(map(repr, names_a))) == len(names_a) and len(set(map(repr, names_b))) == len(names_b):
                by_name = {repr(item["name"]): item for item in b}
                for index, item in enumerate(a):
                    other = by_name.get(repr(item["name"]))
                    if other is None:
                        self.report(path + [str(index)], f"item named {item['name']!r} missing in B")
                    else:
                        self.compare(item, other, path + [str(index)])
                if not self.ignore_injected:
                    known = {repr(n) for n in names_a}
                    for index, item in enumerate(b):
                        if repr(item["name"]) not in known:
                            self.report(path + [str(index)], f"item named {item['name']!r} only in B")
                return
        for index, item in enumerate(a):
            if index >= len(b):
                self.report(path + [str(index)], f"missing in B (A has {describe(item)})")
            else:
                self.compare(item, b[index], path + [str(index)])
        if len(b) > len(a) and not self.ignore_injected:
            for index in range(len(a), len(b)):
                self.report(path + [str(index)], f"only in B: {describe(b[index])}")


def load_stream(source: str) -> list[Any]:
    if source == "-":
        text = sys.stdin.read()
    else:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def identity(doc: Any, index: int) -> tuple[str, str, str]:
    """(key, label, kind/name) of a document."""
    if isinstance(doc, dict):
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        kind, name = doc.get("kind"), meta.get("name")
        if isinstance(kind, str) and isinstance(name, str):
            namespace = meta.get("namespace") or ""
            api = doc.get("apiVersion") or ""
            key = f"{api}|{kind}|{namespace}|{name}"
            label = f"{kind}/{name}" + (f" (namespace {namespace})" if namespace else "")
            return key, label, f"{kind}\0{name}"
    return f"#{index}", f"document #{index + 1}", "\0"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="yaml11_roundtrip.py", description=__doc__.splitlines()[0])
    parser.add_argument("a", help="original stream (file or -)")
    parser.add_argument("b", help="transformed stream (file or -)")
    parser.add_argument("--ignore-injected", action="store_true")
    parser.add_argument("--ignore", action="append", default=[], metavar="[SELECTOR:]POINTER")
    parser.add_argument("--allow-removed-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.a == "-" and args.b == "-":
        parser.error("only one of A and B can be read from stdin")

    try:
        ignores = [Ignore(spec) for spec in args.ignore]
    except ValueError as exc:
        parser.error(str(exc))
    try:
        docs_a = load_stream(args.a)
        docs_b = load_stream(args.b)
    except (OSError, yaml.YAMLError) as exc:
        sys.stderr.write(f"yaml11_roundtrip.py: {exc}\n")
        return 2

    comparer = Comparer(ignores, args.ignore_injected)
    index_b: dict[str, Any] = {}
    labels_b: dict[str, str] = {}
    for i, doc in enumerate(docs_b):
        key, label, _ = identity(doc, i)
        if key in index_b:
            comparer.errors.append(f"{label}: appears more than once in B")
        index_b[key] = doc
        labels_b[key] = label

    seen: set[str] = set()
    for i, doc in enumerate(docs_a):
        key, label, kind_name = identity(doc, i)
        comparer.doc = label
        comparer.kind, _, comparer.name = kind_name.partition("\0")
        if key in seen:
            comparer.errors.append(f"{label}: appears more than once in A")
            continue
        seen.add(key)
        if key not in index_b:
            if not args.allow_removed_docs:
                comparer.errors.append(f"{label}: missing from B")
            continue
        comparer.compare(doc, index_b[key], [])

    if not args.ignore_injected:
        for key, label in labels_b.items():
            if key not in seen:
                comparer.errors.append(f"{label}: only in B")

    for line in comparer.errors:
        print(line)
    return 1 if comparer.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
