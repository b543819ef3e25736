#!/usr/bin/env bash
# Build release archives and fill the krew manifests.
#
#   krew-manifests/release.sh VERSION [--target TRIPLE] [--no-build] [--bin-dir DIR]
#                                     [--plugins "mesh-migrate spire-check dbiso"]
#                                     [--out-dir DIR]
#   krew-manifests/release.sh VERSION --from-archives DIR [--plugins ...] [--out-dir DIR]
#
# VERSION is the release tag, e.g. v0.1.0. For each plugin the first form
#   1. builds the binary: cargo build --release --locked -p <crate>
#      [--target TRIPLE] (skipped with --no-build). Binaries are taken from
#      --bin-dir, default: cargo's release directory (target/release, or
#      target/TRIPLE/release with --target; CARGO_TARGET_DIR is honoured);
#   2. generates the completion helper kubectl_complete-<plugin_with_underscores>
#      (.cmd on windows) from kubectl_complete-template.sh / .cmd;
#   3. packs <plugin>_<os>_<arch>.tar.gz with the binary, the helper and
#      LICENSE (reproducible: sorted entries, owner 0, fixed timestamps) plus a
#      <archive>.sha256 file;
#   4. writes <out-dir>/<plugin>.yaml (default out-dir:
#      target/release-artifacts, where the archives go too): the manifest with
#      spec.version, the download URLs, the store path and the RBAC link in
#      caveats set to VERSION and the sha256 of this platform filled in. An
#      existing file there is updated in place, so running once per target
#      accumulates all platforms of one VERSION; platforms not built keep
#      their previous value (the all-zero placeholder at first). A file left
#      from another version is replaced.
# The os/arch come from the target triple (default: the host's).
#
# The second form only does step 4, for every <plugin>_<os>_<arch>.tar.gz in
# DIR (archives built elsewhere, e.g. one CI job per target), and then
# requires every platform to be filled (validate.py --release).
#
# Needs bash, python 3.8+ (python3, python, or $PYTHON) and, unless
# --no-build, cargo. The filled manifests are checked with validate.py when a
# python with PyYAML is found ($VALIDATE_PYTHON, target/venv, $PYTHON).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out_dir="$root/target/release-artifacts"

die() {
  echo "release.sh: error: $*" >&2
  exit 1
}

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ "$#" -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
version="$1"
shift
[[ "$version" =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]] ||
  die "VERSION must look like v1.2.3 (got '$version')"

target=""
explicit_target=0
build=1
bin_dir=""
from_archives=""
plugins="mesh-migrate spire-check dbiso"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --target) target="${2:?--target needs a value}"; explicit_target=1; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a value}"; shift 2 ;;
    --plugins) plugins="${2:?--plugins needs a value}"; shift 2 ;;
    --from-archives) from_archives="${2:?--from-archives needs a value}"; shift 2 ;;
    --out-dir) out_dir="${2:?--out-dir needs a value}"; shift 2 ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1'" ;;
  esac
done

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
fi
[ -n "$python" ] || die "python 3.8 or newer is required (python3, python, or \$PYTHON)"

case "$out_dir" in /*|[A-Za-z]:*) ;; *) out_dir="$PWD/$out_dir" ;; esac
mkdir -p "$out_dir"

# Plugin -> cargo package (the crates under crates/).
crate_of() {
  case "$1" in
    mesh-migrate) echo mesh-migrate ;;
    spire-check) echo spire-check ;;
    dbiso) echo dbiso ;;
    *) die "unknown plugin '$1'" ;;
  esac
}
for plugin in $plugins; do crate_of "$plugin" >/dev/null; done

sha256_of() {
  "$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
}

# fill_manifest SRC DST VERSION OS ARCH SHA256: set the version everywhere and
# the sha256 of the platform whose selector is OS/ARCH. Works on the text so
# comments and layout survive.
fill_manifest() {
  "$python" - "$@" <<'PY'
import re, sys
src, dst, version, os_name, arch, digest = sys.argv[1:7]
with open(src, encoding="utf-8") as fh:
    lines = fh.read().split("\n")
out, found = [], False
cur_os = cur_arch = None
for line in lines:
    if re.match(r"^    - ", line):  # a new entry of spec.platforms
        cur_os = cur_arch = None
    m = re.match(r"^\s+(os|arch):\s*(\S+)\s*$", line)
    if m:
        if m.group(1) == "os":
            cur_os = m.group(2)
        else:
            cur_arch = m.group(2)
    if re.match(r"^  version:\s", line):
        line = f"  version: {version}"
    line = re.sub(r"(/releases/download/)v[^/]+/", rf"\g<1>{version}/", line)
    line = re.sub(r"(/store/[A-Za-z0-9_-]+/)v[0-9][^/]*/", rf"\g<1>{version}/", line)
    line = re.sub(r"(/meshmove/tree/)v[0-9][^/]*/", rf"\g<1>{version}/", line)
    m = re.match(r"^(\s+sha256:\s*)\"?[0-9a-f]*\"?\s*$", line)
    if m and cur_os == os_name and cur_arch == arch:
        line = f'{m.group(1)}"{digest}"'
        found = True
    out.append(line)
if not found:
    sys.exit(f"no platform os={os_name} arch={arch} with a sha256 line in {src}")
with open(dst, "w", encoding="utf-8", newline="\n") as fh:
    fh.write("\n".join(out))
PY
}

# update_manifest PLUGIN OS ARCH SHA256
update_manifest() {
  local plugin="$1" os_name="$2" arch_name="$3" digest="$4" manifest base
  manifest="$out_dir/$plugin.yaml"
  base="$here/$plugin.yaml"
  if [ -f "$manifest" ]; then
    if grep -q "^  version: $version\$" "$manifest"; then
      base="$manifest"
    else
      echo "release.sh: $manifest is for another version; starting from $base" >&2
    fi
  fi
  fill_manifest "$base" "$manifest.tmp" "$version" "$os_name" "$arch_name" "$digest"
  mv "$manifest.tmp" "$manifest"
}

# validate_manifests [validate.py options]
validate_manifests() {
  local checker="" candidate plugin
  local -a manifests=()
  for candidate in "${VALIDATE_PYTHON:-}" "$root/target/venv/bin/python" "$python"; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import yaml' >/dev/null 2>&1; then
      checker="$candidate"
      break
    fi
  done
  for plugin in $plugins; do manifests+=("$out_dir/$plugin.yaml"); done
  if [ -n "$checker" ]; then
    "$checker" "$here/validate.py" "$@" "${manifests[@]}" >/dev/null ||
      die "the filled manifests do not validate"
  else
    echo "release.sh: warning: PyYAML not found, filled manifests not validated" >&2
  fi
}

if [ -n "$from_archives" ]; then
  [ -d "$from_archives" ] || die "--from-archives: $from_archives is not a directory"
  for plugin in $plugins; do
    found=0
    for archive in "$from_archives/${plugin}"_*_*.tar.gz; do
      [ -f "$archive" ] || continue
      name="$(basename "$archive" .tar.gz)"
      rest="${name#"${plugin}"_}"
      os_name="${rest%%_*}"
      arch_name="${rest#*_}"
      digest="$(sha256_of "$archive")"
      update_manifest "$plugin" "$os_name" "$arch_name" "$digest"
      echo "release.sh: $plugin $version $os_name/$arch_name sha256 $digest"
      found=1
    done
    [ "$found" -eq 1 ] || die "no ${plugin}_<os>_<arch>.tar.gz in $from_archives"
  done
  validate_manifests --release
  exit 0
fi

[ -f "$root/LICENSE" ] || die "missing $root/LICENSE"

# Target triple -> krew os/arch.
host=""
if command -v rustc >/dev/null 2>&1; then
  host="$(rustc -vV | sed -n 's/^host: //p')"
fi
if [ -z "$target" ]; then
  [ -n "$host" ] || die "rustc is required to find the host target (or pass --target)"
  target="$host"
fi
case "$target" in
  x86_64-*-linux-*) os=linux; arch=amd64 ;;
  aarch64-*-linux-*) os=linux; arch=arm64 ;;
  x86_64-apple-darwin) os=darwin; arch=amd64 ;;
  aarch64-apple-darwin) os=darwin; arch=arm64 ;;
  x86_64-pc-windows-*) os=windows; arch=amd64 ;;
  aarch64-pc-windows-*) os=windows; arch=arm64 ;;
  *) die "unsupported target '$target' (linux, darwin, windows on x86_64 or aarch64)" ;;
esac
exe=""
[ "$os" = windows ] && exe=".exe"

if [ -z "$bin_dir" ]; then
  cargo_target_dir="${CARGO_TARGET_DIR:-$root/target}"
  case "$cargo_target_dir" in /*|[A-Za-z]:*) ;; *) cargo_target_dir="$root/$cargo_target_dir" ;; esac
  if [ "$explicit_target" -eq 1 ]; then
    bin_dir="$cargo_target_dir/$target/release"
  else
    bin_dir="$cargo_target_dir/release"
  fi
fi

stage_root="$(mktemp -d "${TMPDIR:-/tmp}/release.XXXXXX")"
trap 'rm -rf "$stage_root"' EXIT

# generate_completion PLUGIN DIR: write kubectl_complete-<plugin_us>[.cmd].
generate_completion() {
  local plugin="$1" dest="$2" plugin_us binary path_name template out
  plugin_us="${plugin//-/_}"
  binary="kubectl-$plugin"
  path_name="kubectl-$plugin_us"
  if [ "$os" = windows ]; then
    template="$here/kubectl_complete-template.cmd"
    out="$dest/kubectl_complete-$plugin_us.cmd"
  else
    template="$here/kubectl_complete-template.sh"
    out="$dest/kubectl_complete-$plugin_us"
  fi
  sed -e "s/@PLUGIN@/$plugin/g" -e "s/@PLUGIN_US@/$plugin_us/g" \
    -e "s/@BINARY@/$binary/g" -e "s/@PATH_NAME@/$path_name/g" "$template" >"$out"
  chmod 0755 "$out"
  if grep -q '@[A-Z_]*@' "$out"; then
    die "unreplaced placeholder in $out"
  fi
}

# make_archive ARCHIVE DIR: reproducible tar.gz of the files in DIR.
make_archive() {
  "$python" - "$@" <<'PY'
import gzip, io, os, sys, tarfile
archive, src = sys.argv[1], sys.argv[2]
mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
executable = {n for n in os.listdir(src) if not n.startswith("LICENSE")}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        info = tar.gettarinfo(path, arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        info.mode = 0o755 if name in executable else 0o644
        with open(path, "rb") as fh:
            tar.addfile(info, fh)
with open(archive, "wb") as out:
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=mtime, compresslevel=9) as gz:
        gz.write(buf.getvalue())
PY
}

for plugin in $plugins; do
  crate="$(crate_of "$plugin")"
  binary="kubectl-$plugin$exe"
  if [ "$build" -eq 1 ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required (or pass --no-build)"
    cargo_args=(build --release --locked -p "$crate")
    if [ "$explicit_target" -eq 1 ]; then cargo_args+=(--target "$target"); fi
    (cd "$root" && cargo "${cargo_args[@]}") || die "cargo build of $crate failed"
  fi
  [ -f "$bin_dir/$binary" ] || die "binary $bin_dir/$binary not found"

  stage="$stage_root/$plugin"
  mkdir -p "$stage"
  cp "$bin_dir/$binary" "$stage/$binary"
  cp "$root/LICENSE" "$stage/LICENSE"
  generate_completion "$plugin" "$stage"

  archive="$out_dir/${plugin}_${os}_${arch}.tar.gz"
  make_archive "$archive" "$stage"
  digest="$(sha256_of "$archive")"
  echo "$digest  $(basename "$archive")" >"$archive.sha256"
  update_manifest "$plugin" "$os" "$arch" "$digest"
  echo "release.sh: $plugin $version $os/$arch -> $(basename "$archive") sha256 $digest"
done

validate_manifests
