#!/usr/bin/env python3
"""Run a real `helm install --dry-run=client` (Helm 4 SDK) and print the result.

usage: helm_install.py CHART RELEASE NAMESPACE [--values JSON] [--values-file FILE]
                       [--post-renderer NAME] [--post-renderer-arg ARG ...]
                       [--strategy combined|separate|nohooks] [--plugins-dir DIR]
                       [--no-capture]

Prints one JSON object on stdout:

  {
    "manifest": "---\\n# Source: ...",     # the release manifest exactly as Helm
                                           # returns it ("" when empty, null on error)
    "hooks": [{"name", "kind", "path", "events", "weight",
               "delete_policies", "manifest"}, ...],   # Helm's hook order
    "hooks_source": "render" | "post-renderer" | null,
    "notes": "...",
    "release": {"name", "namespace", "revision", "status",
                "chart_name", "chart_version"},
    "post_renderer_invocations": [{"argv", "stdin", "stdout", "stderr",
                                   "exit_code", "exec_error"}, ...] | null,
    "capture": {"enabled": bool, "reason": str | null},
    "error": null | "Helm's error message"
  }

and exits 0, or exits 1 with Helm's error message on stderr (the JSON is still
printed, with "error" set, so callers can inspect what the post-renderer saw).

Helm's install summary has no hooks, and Helm throws away a post-renderer's
stderr and exit status. So, unless --no-capture is given, the post-renderer
plugin is run through a recorder: a copy of its plugin.yaml (same name, type,
platform selectors and arguments) whose command runs _postrender_capture.py,
which executes the real command unchanged and logs each invocation. Hooks are
then taken from the post-renderer output (strategies combined and separate) or
from Helm's own render (no post-renderer, or strategy nohooks).

--plugins-dir sets HELM_PLUGINS (Helm's plugin search path) for the run; use
--post-renderer-arg=--flag for arguments that start with a dash.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any

import yaml

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _helm_common as common  # noqa: E402

CAPTURE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_postrender_capture.py")
STRATEGIES = ("combined", "separate", "nohooks")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="helm_install.py",
        description="Real Helm 4 dry-run install (client) with an optional post-renderer plugin.",
    )
    parser.add_argument("chart", help="chart directory or .tgz")
    parser.add_argument("release", help="release name")
    parser.add_argument("namespace", help="release namespace")
    parser.add_argument("--values", dest="values_json", help="values as a JSON object")
    parser.add_argument("--values-file", help="values file (YAML, or JSON when it ends in .json)")
    parser.add_argument("--post-renderer", help="name of a postrenderer/v1 plugin")
    parser.add_argument(
        "--post-renderer-arg",
        dest="post_renderer_args",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the post-renderer (repeatable)",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, help="post_render_strategy (Helm default: combined)")
    parser.add_argument("--plugins-dir", help="directory holding plugin directories (sets HELM_PLUGINS)")
    parser.add_argument("--no-capture", action="store_true", help="run the plugin without the recorder")
    return parser.parse_args(argv)


def go_expand(text: str, env: dict[str, str]) -> str:
    """os.Expand as Helm applies it to plugin commands: ${VAR} and $VAR."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) if match.group(1) is not None else match.group(2)
        return env.get(name, "")

    return re.sub(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)", repl, text)


def helm_plugin_dirs(env: dict[str, str]) -> list[str]:
    """Helm's plugin search path: HELM_PLUGINS, else the data-home default."""
    if env.get("HELM_PLUGINS"):
        return env["HELM_PLUGINS"].split(os.pathsep)
    if env.get("HELM_DATA_HOME"):
        return [os.path.join(env["HELM_DATA_HOME"], "plugins")]
    home = env.get("HOME") or os.path.expanduser("~")
    if sys.platform == "darwin":
        return [os.path.join(home, "Library", "helm", "plugins")]
    data_home = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return [os.path.join(data_home, "helm", "plugins")]


def find_plugin(plugin_dirs: list[str], name: str) -> tuple[str, dict[str, Any]] | None:
    """The first postrenderer/v1 plugin called NAME, searched like Helm does."""
    for base in plugin_dirs:
        if not base or not os.path.isdir(base):
            continue
        for entry in sorted(os.listdir(base)):
            plugin_yaml = os.path.join(base, entry, "plugin.yaml")
            if not os.path.isfile(plugin_yaml):
                continue
            try:
                with open(plugin_yaml, encoding="utf-8") as handle:
                    meta = yaml.safe_load(handle)
            except (OSError, yaml.YAMLError):
                continue
            if (
                isinstance(meta, dict)
                and meta.get("name") == name
                and meta.get("type") == "postrenderer/v1"
                and meta.get("apiVersion") == "v1"
            ):
                return os.path.abspath(os.path.join(base, entry)), meta
    return None


def select_platform_command(commands: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Helm's platform selection: exact os+arch, then os, then unspecified."""
    goos = {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform, sys.platform)
    machine = os.uname().machine if hasattr(os, "uname") else ""
    goarch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    chosen, found_os = None, False
    for cmd in commands:
        c_os = str(cmd.get("os") or "")
        c_arch = str(cmd.get("arch") or "")
        if c_os.lower() == goos and c_arch.lower() == goarch:
            return cmd
        if (c_os and c_os.lower() != goos) or c_arch:
            continue
        if not found_os and c_os:
            chosen, found_os = cmd, True
        elif chosen is None:
            chosen = cmd
    return chosen


def prepare_capture(
    plugin_dirs: list[str], name: str, work_dir: str, helm_env: dict[str, str]
) -> tuple[str | None, str | None, str | None]:
    """Build a recording copy of plugin NAME. Returns (plugins_dir, log_dir, reason)."""
    found = find_plugin(plugin_dirs, name)
    if found is None:
        return None, None, f"plugin {name!r} not found by the recorder; Helm reports the error"
    plugin_dir, meta = found
    runtime_config = meta.get("runtimeConfig") or {}
    commands = runtime_config.get("platformCommand") or []
    if meta.get("runtime") != "subprocess" or not isinstance(commands, list) or not commands:
        return None, None, "plugin is not a subprocess plugin with platformCommand"
    if re.search(r"\s", sys.executable) or re.search(r"\s", CAPTURE_SCRIPT):
        return None, None, "interpreter or recorder path contains whitespace"

    env = dict(helm_env)
    env["HELM_PLUGIN_NAME"] = name
    env["HELM_PLUGIN_DIR"] = plugin_dir
    selected = select_platform_command(commands)
    if selected is not None:
        parts = str(selected.get("command") or "").split(" ")
        main = go_expand(parts[0], env) if parts and parts[0] else ""
        if main and os.sep not in main and shutil.which(main, path=env.get("PATH", "")) is None:
            return None, None, f"{main!r} is not on PATH; Helm reports the error"

    log_dir = os.path.join(work_dir, "invocations")
    os.makedirs(log_dir)
    literal_dir = plugin_dir.replace("$", "$$")
    new_commands = []
    for cmd in commands:
        command = str(cmd.get("command") or "")
        if not command:
            new_commands.append(cmd)  # keep Helm's own "no command" error
            continue
        original = command.split(" ") + [str(a) for a in (cmd.get("args") or [])]
        original = [
            part.replace("${HELM_PLUGIN_DIR}", literal_dir).replace("$HELM_PLUGIN_DIR", literal_dir)
            for part in original
        ]
        entry: dict[str, Any] = {
            "command": sys.executable,
            "args": [CAPTURE_SCRIPT, log_dir, plugin_dir, "--", *original],
        }
        for key in ("os", "arch"):
            if cmd.get(key):
                entry[key] = cmd[key]
        new_commands.append(entry)

    plugins_root = os.path.join(work_dir, "plugins")
    copy_dir = os.path.join(plugins_root, os.path.basename(plugin_dir))
    os.makedirs(copy_dir)
    copy_meta = {
        "apiVersion": "v1",
        "type": "postrenderer/v1",
        "name": meta["name"],
        "version": str(meta.get("version") or "0.0.0"),
        "runtime": "subprocess",
        "runtimeConfig": {"platformCommand": new_commands},
    }
    with open(os.path.join(copy_dir, "plugin.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(copy_meta, handle, sort_keys=False)
    return plugins_root, log_dir, None


def read_invocations(log_dir: str | None) -> list[dict[str, Any]] | None:
    if log_dir is None:
        return None
    records = []
    for entry in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, entry), encoding="utf-8") as handle:
            text = handle.read()
        if text:
            records.append(json.loads(text))
    return records


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        values = common.load_values(args.values_json, args.values_file)
    except (common.ToolError, OSError, yaml.YAMLError) as exc:
        common.fail(f"helm_install.py: {exc}", 2)

    # The environment Helm runs with (Helm reads HELM_PLUGINS and the plugin
    # is looked up on this PATH).
    helm_env = dict(os.environ)
    if args.plugins_dir:
        helm_env["HELM_PLUGINS"] = os.path.abspath(args.plugins_dir)

    result: dict[str, Any] = {
        "manifest": None,
        "hooks": None,
        "hooks_source": None,
        "notes": None,
        "release": None,
        "post_renderer_invocations": None,
        "capture": {"enabled": False, "reason": None},
        "error": None,
    }

    with tempfile.TemporaryDirectory(prefix="helm-install-") as work_dir:
        log_dir = None
        if args.post_renderer and not args.no_capture:
            plugin_dirs = helm_plugin_dirs(helm_env)
            plugins_root, log_dir, reason = prepare_capture(plugin_dirs, args.post_renderer, work_dir, helm_env)
            if plugins_root is not None:
                helm_env["HELM_PLUGINS"] = plugins_root
                result["capture"] = {"enabled": True, "reason": None}
            else:
                result["capture"] = {"enabled": False, "reason": reason}
        elif args.post_renderer:
            result["capture"] = {"enabled": False, "reason": "--no-capture"}

        options: dict[str, Any] = {}
        if args.post_renderer:
            options["post_renderer"] = args.post_renderer
            options["post_renderer_args"] = args.post_renderer_args
            if args.strategy:
                options["post_render_strategy"] = args.strategy
        elif args.strategy:
            options["post_render_strategy"] = args.strategy

        try:
            summary = common.dry_run_install(args.chart, args.release, args.namespace, values, options, helm_env)
        except common.HelmCallError as exc:
            result["error"] = str(exc)
            result["post_renderer_invocations"] = read_invocations(log_dir)
            print(json.dumps(result, indent=2))
            sys.stderr.write(result["error"].rstrip("\n") + "\n")
            return 1
        except common.ToolError as exc:
            common.fail(f"helm_install.py: {exc}", 2)

        result["manifest"] = summary.get("manifest", "")
        result["notes"] = summary.get("notes", "")
        result["release"] = {
            key: summary.get(key)
            for key in ("name", "namespace", "revision", "status", "chart_name", "chart_version")
        }
        invocations = read_invocations(log_dir)
        result["post_renderer_invocations"] = invocations

        strategy = args.strategy or "combined"
        try:
            if not args.post_renderer or strategy == "nohooks":
                files = common.render_files(args.chart, values, args.release, args.namespace)
                hooks, _ = common.sort_manifests(common.drop_rendered_notes(files))
                result["hooks"], result["hooks_source"] = hooks, "render"
            elif invocations is not None:
                outputs = [rec["stdout"] for rec in invocations if rec.get("exit_code") == 0]
                result["hooks"] = common.hooks_from_post_rendered(outputs)
                result["hooks_source"] = "post-renderer"
        except (common.ToolError, common.HelmCallError) as exc:
            common.fail(f"helm_install.py: collecting hooks failed: {exc}", 2)

    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
