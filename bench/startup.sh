#!/usr/bin/env bash
# Startup benchmark: wall time from process start to every kernel compiled and ready
# (`kiln compile` over all embedded programs), median of N runs, in four cache states:
#   cold        Kiln's binary cache and PoCL's kernel cache both empty (a fresh machine)
#   kiln-cold   Kiln's cache empty, PoCL's warm (PoCL's own cache hides part of the compile)
#   warm        Kiln's cache holds every program: load binaries only
#   no-cache    KILN_NO_CACHE=1 with PoCL's cache warm: what the binary cache saves
# Usage: bench/startup.sh [KILN_BINARY] [DEVICE_SPEC] [RUNS]
set -euo pipefail
kiln="${1:-build/kiln}"
device="${2:-pocl}"
runs="${3:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

now_ns() { date +%s%N; }

# Runs one timed start in the given cache state; prints milliseconds.
one_run() {
  local state="$1" kcache="$work/kiln-$state" pcache="$work/pocl-$state"
  case "$state" in
    cold) rm -rf "$kcache" "$pcache" ;;
    kiln-cold) rm -rf "$kcache" ;;
  esac
  mkdir -p "$kcache" "$pcache"
  local extra=()
  [ "$state" = no-cache ] && extra=(env KILN_NO_CACHE=1)
  local t0 t1
  t0=$(now_ns)
  "${extra[@]}" env KILN_CACHE_DIR="$kcache" POCL_CACHE_DIR="$pcache" \
    "$kiln" compile --device "$device" >/dev/null
  t1=$(now_ns)
  echo $(( (t1 - t0) / 1000000 ))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

echo "kiln startup to all kernels ready: $("$kiln" compile --list | wc -l) program(s), device '$device', $runs runs"
echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '%-10s %10s %10s %10s\n' state "median ms" "min ms" "max ms"
for state in cold kiln-cold warm no-cache; do
  # Prime the caches that the state assumes are warm.
  if [ "$state" != cold ]; then one_run "$state" >/dev/null; fi
  times=()
  for _ in $(seq "$runs"); do times+=("$(one_run "$state")"); done
  sorted=$(printf '%s\n' "${times[@]}")
  printf '%-10s %10s %10s %10s\n' "$state" "$(echo "$sorted" | median)" \
    "$(echo "$sorted" | sort -n | head -1)" "$(echo "$sorted" | sort -n | tail -1)"
done
