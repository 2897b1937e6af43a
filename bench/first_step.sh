#!/usr/bin/env bash
# Start-up benchmark of the performance issue: seconds from process start to the end of the
# first training step of `kiln train models/fashion_mnist_mlp.yaml` (the default model), read
# from summary.json's first_step_seconds (from the command's start, so the dynamic loader's few
# milliseconds before main are not counted; config, data loading and preprocessing, device and
# kernel set-up and the step itself are). Median, min and max of RUNS runs in two cache states:
#   cold  Kiln's binary cache (KILN_CACHE_DIR) and PoCL's kernel cache (POCL_CACHE_DIR) both
#         empty before every run: a fresh machine
#   warm  both populated by a run before the timed ones
# Each run trains one epoch and evaluates the test split, which the figure does not include.
# Ends with one line (medians; warm_vs_target is the warm median over the issue's 0.3 s
# target, so 1 or less meets it):
#   RESULT first_step_cold_s=S first_step_warm_s=S warm_vs_target=R
# Usage: bench/first_step.sh [KILN_BINARY] [DEVICE_SPEC] [RUNS]
set -euo pipefail
kiln="${1:-build/kiln}"
device="${2:-pocl}"
runs="${3:-3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$here/../models/fashion_mnist_mlp.yaml"
target=0.3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One run with the caches under $work/STATE; prints its first_step_seconds.
one_run() {
  local state="$1" run="$work/run"
  [ "$state" = cold ] && rm -rf "$work/kiln-cold" "$work/pocl-cold"
  mkdir -p "$work/kiln-$state" "$work/pocl-$state"
  rm -rf "$run"
  KILN_CACHE_DIR="$work/kiln-$state" POCL_CACHE_DIR="$work/pocl-$state" \
    "$kiln" train "$config" --device "$device" --quiet --run-dir "$run" \
    --set train.epochs=1 --set "train.callbacks.checkpoint.path=$run/best.safetensors" >/dev/null
  sed -n 's/^ *"first_step_seconds": \([0-9.eE+-]*\).*/\1/p' "$run/summary.json"
}

# "median min max" of the numbers on stdin.
stats() {
  sort -g | awk '{ a[NR] = $1 }
    END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
          printf "%.3f %.3f %.3f\n", m, a[1], a[NR] }'
}

echo "kiln start-up to the end of the first training step: models/fashion_mnist_mlp.yaml, device '$device', $runs runs"
echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "| caches | median s | min s | max s |"
echo "| --- | ---: | ---: | ---: |"
declare -A median
for state in cold warm; do
  [ "$state" = warm ] && one_run warm >/dev/null # populate both caches
  read -r med lo hi < <(for _ in $(seq "$runs"); do one_run "$state"; done | stats)
  median[$state]="$med"
  echo "| $state | $med | $lo | $hi |"
done
ratio="$(awk -v w="${median[warm]}" -v t="$target" 'BEGIN { printf "%.2f", w / t }')"
echo "RESULT first_step_cold_s=${median[cold]} first_step_warm_s=${median[warm]} warm_vs_target=$ratio"
