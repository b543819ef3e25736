"""Transparent recorder around a post-renderer command.

helm_install.py points a copy of the post-renderer plugin at this script:

    python _postrender_capture.py LOG_DIR PLUGIN_DIR -- COMMAND [ARGS...]

It runs COMMAND exactly as Helm would have (same arguments, stdin, and
environment, with HELM_PLUGIN_DIR set back to the real plugin directory),
passes its stdout, stderr and exit status through unchanged, and writes one
JSON record per invocation into LOG_DIR (invocation-0001.json, ...), because
Helm itself discards a post-renderer's stderr and exit status.

Standard library only: it runs under whatever interpreter helm_install.py uses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys


def _next_record_path(log_dir: str) -> str:
    number = 1
    while True:
        path = os.path.join(log_dir, f"invocation-{number:04d}.json")
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            number += 1
            continue
        os.close(fd)
        return path


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write("usage: _postrender_capture.py LOG_DIR PLUGIN_DIR -- COMMAND [ARGS...]\n")
        return 2
    log_dir, plugin_dir, command = argv[1], argv[2], argv[4:]

    stdin_bytes = sys.stdin.buffer.read()
    env = dict(os.environ)
    env["HELM_PLUGIN_DIR"] = plugin_dir

    executable = command[0]
    if os.sep not in executable:
        found = shutil.which(executable, path=env.get("PATH", ""))
        if found is None:
            message = f'exec: "{executable}": executable file not found in $PATH\n'
            record = {"argv": command, "stdin": stdin_bytes.decode("utf-8", "replace"),
                      "stdout": "", "stderr": message, "exit_code": None,
                      "exec_error": message.strip()}
            with open(_next_record_path(log_dir), "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            sys.stderr.write(message)
            return 127
        executable = found

    try:
        proc = subprocess.run(
            [executable, *command[1:]],
            input=stdin_bytes,
            capture_output=True,
            env=env,
            check=False,
        )
        stdout, stderr, code, exec_error = proc.stdout, proc.stderr, proc.returncode, None
    except OSError as exc:
        stdout, stderr, code, exec_error = b"", f"{exc}\n".encode(), 126, str(exc)

    record = {
        "argv": command,
        "stdin": stdin_bytes.decode("utf-8", "replace"),
        "stdout": stdout.decode("utf-8", "replace"),
        "stderr": stderr.decode("utf-8", "replace"),
        # Negative values are signals (subprocess convention).
        "exit_code": code,
        "exec_error": exec_error,
    }
    with open(_next_record_path(log_dir), "w", encoding="utf-8") as handle:
        json.dump(record, handle)

    sys.stdout.buffer.write(stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(stderr)
    sys.stderr.buffer.flush()
    if code < 0:
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
