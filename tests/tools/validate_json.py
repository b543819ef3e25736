#!/usr/bin/env python3
"""Validate JSON documents against one shape of docs/schemas/meshmove-output.schema.json.

Usage: validate_json.py DEF FILE...   (DEF is a $defs name such as `report`; FILE `-` is stdin)
Each file must be valid against `#/$defs/DEF` (and so against the whole schema). Prints one line per failure with its JSON path; exit 1 on
any failure, 2 on bad usage.
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator

SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "docs/schemas/meshmove-output.schema.json"


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    name = argv[1]
    if name not in schema["$defs"]:
        print(f"no shape {name!r} in {SCHEMA}", file=sys.stderr)
        return 2
    shape = Draft202012Validator({"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{name}"})
    failed = False
    for path in argv[2:]:
        text = sys.stdin.read() if path == "-" else pathlib.Path(path).read_text()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            print(f"{path}: not JSON: {e}")
            failed = True
            continue
        for validator, what in ((shape, name),):
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                where = "/".join(str(p) for p in err.absolute_path) or "(document)"
                print(f"{path}: {what}: at {where}: {err.message[:300]}")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
