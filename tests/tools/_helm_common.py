"""Shared helpers for helm_install.py and helm_render.py.

Helm itself (through helm-python-sdk, which embeds the Helm 4 Go SDK) renders
the charts and runs the installs. This module only reproduces the small,
documented pieces of Helm's bookkeeping that the SDK does not hand back:

* the hook list of a release (the SDK's install summary carries the manifest
  but no hooks), built with the same rules as Helm's ``SortManifests``:
  files in lexical order, documents split with Helm's separator regex,
  partials (``_*``) and blank files skipped, a document is a hook when its
  ``helm.sh/hook`` annotation names known events, and hooks are stable-sorted
  by kind in install order;
* the generic (non-hook) manifest in the same order, used to cross-check this
  port against the manifest Helm returns, so a drift fails loudly.

Helm calls run in a child process (_helm_worker.py): the Go runtime inside
the SDK's library only sees the environment the process started with.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import yaml

HOOK_ANNOTATION = "helm.sh/hook"
HOOK_WEIGHT_ANNOTATION = "helm.sh/hook-weight"
HOOK_DELETE_ANNOTATION = "helm.sh/hook-delete-policy"
FILENAME_ANNOTATION = "postrenderer.helm.sh/postrender-filename"

# Hook events Helm accepts (an unknown event makes Helm skip the document).
HOOK_EVENTS = {
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
    "test-success",
}

# Helm's install order by kind; unknown kinds go last, alphabetically.
INSTALL_ORDER = [
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
]
_KIND_RANK = {kind: i for i, kind in enumerate(INSTALL_ORDER)}

# Go's regexp `(?:^|\s*\n)---\s*` with RE2's ASCII \s.
_SEPARATOR = re.compile(r"(?:^|[\t\n\f\r ]*\n)---[\t\n\f\r ]*")
_GO_SPACE = "\t\n\v\f\r \x85\xa0"


class ToolError(Exception):
    """A failure of the tool itself (bad arguments, port drift)."""


def go_trim_left_space(text: str) -> str:
    """strings.TrimLeftFunc(text, unicode.IsSpace)."""
    i = 0
    while i < len(text) and (text[i] in _GO_SPACE or (ord(text[i]) > 0xFF and text[i].isspace())):
        i += 1
    return text[i:]


def split_manifests(big_file: str) -> list[str]:
    """Helm's releaseutil.SplitManifests, returned in document order."""
    docs = []
    for doc in _SEPARATOR.split(go_trim_left_space(big_file)):
        if doc == "":
            continue
        docs.append(go_trim_left_space(doc))
    return docs


def kind_sort_key(kind: str) -> tuple[int, int, str]:
    rank = _KIND_RANK.get(kind)
    if rank is None:
        return (1, 0, kind)
    return (0, rank, "")


def _head(doc: str, path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(doc)
    except yaml.YAMLError as exc:
        raise ToolError(f"YAML parse error on {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _annotations(head: dict[str, Any]) -> dict[str, Any]:
    meta = head.get("metadata")
    if not isinstance(meta, dict):
        return {}
    ann = meta.get("annotations")
    return ann if isinstance(ann, dict) else {}


def _csv(value: Any) -> list[str]:
    return [part.strip().lower() for part in str(value).split(",")]


def sort_manifests(files: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Port of Helm's SortManifests: (hooks, generic manifests), both sorted."""
    hooks: list[dict[str, Any]] = []
    generic: list[dict[str, Any]] = []
    for path in sorted(files):
        content = files[path]
        if os.path.basename(path).startswith("_") or content.strip() == "":
            continue
        for doc in split_manifests(content):
            head = _head(doc, path)
            kind = str(head.get("kind") or "")
            ann = _annotations(head)
            if HOOK_ANNOTATION not in ann:
                generic.append({"path": path, "kind": kind, "content": doc})
                continue
            events = _csv(ann[HOOK_ANNOTATION])
            if any(event not in HOOK_EVENTS for event in events):
                continue  # Helm skips documents with unknown hook events.
            try:
                weight = int(str(ann.get(HOOK_WEIGHT_ANNOTATION, "0")).strip())
            except ValueError:
                weight = 0
            meta = head.get("metadata") if isinstance(head.get("metadata"), dict) else {}
            hooks.append(
                {
                    "name": str(meta.get("name") or ""),
                    "kind": kind,
                    "path": path,
                    "events": ["test" if e == "test-success" else e for e in events],
                    "weight": weight,
                    "delete_policies": _csv(ann[HOOK_DELETE_ANNOTATION])
                    if HOOK_DELETE_ANNOTATION in ann
                    else [],
                    "manifest": doc,
                }
            )
    hooks.sort(key=lambda h: kind_sort_key(h["kind"]))
    generic.sort(key=lambda m: kind_sort_key(m["kind"]))
    return hooks, [{"path": m["path"], "content": m["content"]} for m in generic]


def format_manifest(generic: list[dict[str, str]]) -> str:
    """The release manifest as Helm builds it from sorted generic documents."""
    return "".join(f"---\n# Source: {m['path']}\n{m['content']}\n" for m in generic)


def drop_rendered_notes(files: dict[str, str]) -> dict[str, str]:
    return {path: text for path, text in files.items() if not path.endswith("NOTES.txt")}


_FILENAME_LINE = re.compile(
    r"^[ \t]*[\"']?" + re.escape(FILENAME_ANNOTATION) + r"[\"']?[ \t]*:.*(?:\n|$)", re.MULTILINE
)


def hooks_from_post_rendered(outputs: list[str]) -> list[dict[str, Any]]:
    """Hooks as Helm derives them from post-renderer output streams.

    Each stream is split into documents; a document keeps the file it came
    from through the filename annotation (documents without it are named
    generated-by-postrender-<index>.yaml, as Helm names them). The annotation
    line is removed from the returned manifest text; Helm additionally
    re-serialises the document, so whitespace may differ from what Helm stores.
    """
    files: dict[str, list[str]] = {}
    for stream in outputs:
        index = 0
        for doc in split_manifests(stream):
            head = _head(doc, "post-renderer output")
            if not head:
                continue
            path = str(_annotations(head).get(FILENAME_ANNOTATION) or "")
            if not path:
                path = f"generated-by-postrender-{index}.yaml"
            index += 1
            files.setdefault(path, []).append(_FILENAME_LINE.sub("", doc))
    merged = {path: "\n---\n".join(docs) for path, docs in files.items()}
    hooks, _ = sort_manifests(merged)
    return hooks


def load_values(values_json: str | None, values_file: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if values_file:
        with open(values_file, encoding="utf-8") as handle:
            text = handle.read()
        loaded = yaml.safe_load(text) if not values_file.endswith(".json") else json.loads(text)
        if loaded is not None and not isinstance(loaded, dict):
            raise ToolError(f"{values_file}: values must be a mapping")
        values = _deep_merge(values, loaded or {})
    if values_json:
        try:
            loaded = json.loads(values_json)
        except json.JSONDecodeError as exc:
            raise ToolError(f"--values is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ToolError("--values must be a JSON object")
        values = _deep_merge(values, loaded)
    return values


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class HelmCallError(Exception):
    """Helm reported an error (the message is Helm's)."""


def _helm_call(request: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_helm_worker.py")
    proc = subprocess.run(
        [sys.executable, worker],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        check=False,
    )
    if proc.returncode != 0:
        raise ToolError(f"Helm worker failed (exit {proc.returncode}): {proc.stderr.strip()}")
    try:
        reply = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ToolError(f"Helm worker printed no reply: {proc.stdout[:200]!r} {proc.stderr[:500]!r}") from exc
    if not reply.get("ok"):
        raise HelmCallError(reply.get("error") or "unknown Helm error")
    return reply["result"]


def render_files(chart_path: str, values: dict[str, Any], release: str, namespace: str) -> dict[str, str]:
    """Helm's template engine over the chart, as an install renders it."""
    request = {"op": "render", "chart": chart_path, "release": release, "namespace": namespace, "values": values}
    result: dict[str, str] = _helm_call(request)
    return result


def dry_run_install(
    chart_path: str,
    release: str,
    namespace: str,
    values: dict[str, Any],
    options: dict[str, Any],
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A real `helm install --dry-run=client` through the SDK's native call.

    `env` is the complete environment Helm sees (HELM_PLUGINS, PATH, ...).
    """
    request = {
        "op": "install",
        "chart": chart_path,
        "release": release,
        "namespace": namespace,
        "values": values,
        "options": options,
    }
    result: dict[str, Any] = _helm_call(request, env)
    return result


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(code)
