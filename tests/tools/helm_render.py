#!/usr/bin/env python3
"""Print a chart's rendered stream exactly as `helm template` prints it.

usage: helm_render.py CHART RELEASE NAMESPACE [--values JSON] [--values-file FILE] [--no-hooks]

`helm template` is a client-side dry-run install: it prints the release
manifest with surrounding whitespace trimmed and a final newline, then every
hook as "---\\n# Source: <path>\\n<manifest>\\n" in Helm's hook order. The
SDK's `Chart.render` only returns {template path: rendered text}, so this tool
takes the manifest from a real dry-run install (Helm's sort order and
"# Source:" lines) and the hooks from Helm's render, grouped and ordered with
a port of Helm's SortManifests. The port also rebuilds the manifest; if that
does not match Helm's byte for byte the tool fails (exit 2) instead of
printing something Helm would not.

Exit 1 with Helm's error on stderr when Helm fails.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _helm_common as common  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="helm_render.py", description=__doc__.splitlines()[0])
    parser.add_argument("chart")
    parser.add_argument("release")
    parser.add_argument("namespace")
    parser.add_argument("--values", dest="values_json", help="values as a JSON object")
    parser.add_argument("--values-file", help="values file (YAML, or JSON when it ends in .json)")
    parser.add_argument("--no-hooks", action="store_true", help="leave hooks out, like --no-hooks")
    args = parser.parse_args(argv)

    try:
        values = common.load_values(args.values_json, args.values_file)
    except (common.ToolError, OSError, yaml.YAMLError) as exc:
        common.fail(f"helm_render.py: {exc}", 2)

    try:
        summary = common.dry_run_install(args.chart, args.release, args.namespace, values, {})
        files = common.render_files(args.chart, values, args.release, args.namespace)
    except common.HelmCallError as exc:
        common.fail(str(exc), 1)
    except common.ToolError as exc:
        common.fail(f"helm_render.py: {exc}", 2)

    manifest = summary.get("manifest", "")
    try:
        hooks, generic = common.sort_manifests(common.drop_rendered_notes(files))
    except common.ToolError as exc:
        common.fail(f"helm_render.py: {exc}", 2)
    if common.format_manifest(generic) != manifest:
        common.fail(
            "helm_render.py: the SortManifests port does not reproduce Helm's manifest for this "
            "chart; refusing to print a stream Helm would not print",
            2,
        )

    out = [manifest.strip() + "\n"]
    if not args.no_hooks:
        out.extend(f"---\n# Source: {h['path']}\n{h['manifest']}\n" for h in hooks)
    sys.stdout.write("".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
