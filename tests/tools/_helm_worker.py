"""Runs one Helm SDK call in a fresh process.

The Go runtime inside helm-python-sdk's library reads the process environment
as it was when the process started: changing os.environ in Python (HELM_PLUGINS,
PATH, ...) has no effect on Helm afterwards. The tools therefore run every
Helm call here, in a child process started with the environment Helm must see.

Request (JSON on stdin):
  {"op": "install", "chart", "release", "namespace", "values", "options"}
  {"op": "render",  "chart", "release", "namespace", "values"}
Reply (JSON on stdout): {"ok": true, "result": ...} or
                        {"ok": false, "error": "...", "error_type": "..."}
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    request = json.load(sys.stdin)
    import helm_python as helm  # noqa: PLC0415
    from helm_python import _native  # noqa: PLC0415
    from helm_python.errors import HelmError  # noqa: PLC0415

    chart = os.path.abspath(request["chart"])
    try:
        if request["op"] == "install":
            opts = {"dry_run": "client", "namespace": request["namespace"]}
            opts.update({k: v for k, v in request.get("options", {}).items() if v is not None})
            with helm.Config(namespace=request["namespace"]) as cfg:
                payload = _native.call_string(
                    "helm_install",
                    cfg._raw(),
                    cfg._context_arg(None),
                    _native.HANDLE(0),
                    chart,
                    request["release"],
                    json.dumps(request.get("values") or {}),
                    json.dumps(opts),
                )
            result = json.loads(payload)
        elif request["op"] == "render":
            with helm.Chart.load(chart) as loaded:
                result = loaded.render(
                    request.get("values") or {},
                    name=request["release"],
                    namespace=request["namespace"],
                    revision=1,
                    is_install=True,
                )
        else:
            raise ValueError(f"unknown op {request['op']!r}")
    except HelmError as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        json.dump({"ok": False, "error": detail, "error_type": type(exc).__name__}, sys.stdout)
        return 0
    json.dump({"ok": True, "result": result}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
