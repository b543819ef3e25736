# Sourced by the setup scripts: serialise concurrent setups of one directory.
#   take_lock LOCKFILE FD   flock on FD where available, else a mkdir lock; `release_lock`
#                           frees the mkdir lock (flock's ends with the process) and runs on exit
#                           unless the caller's own exit trap calls it.
# Needs `die` from the caller.
release_lock() { :; }
take_lock() {
  local lock=$1 fd=$2 waited=0
  if command -v flock >/dev/null 2>&1; then
    eval "exec $fd>\"\$lock\""
    flock -w 900 "$fd" || die "timed out waiting for $lock"
  else
    until mkdir "$lock.d" 2>/dev/null; do
      sleep 1
      waited=$((waited + 1))
      [ "$waited" -lt 900 ] || die "timed out waiting for $lock.d (remove it if no setup is running)"
    done
    _lock_dir="$lock.d"
    release_lock() { rmdir "$_lock_dir" 2>/dev/null || true; }
    trap release_lock EXIT
  fi
}
