#!/usr/bin/env bash
# One epoch of the Fashion-MNIST MLP (models/fashion_mnist_mlp.yaml) with `kiln train` on an
# OpenCL device and with PyTorch on this CPU (bench/torch_train_fmnist.py) at 1 and 2 threads,
# then one table of samples/s. Kiln's epoch time is the `seconds` of its log.csv (training
# plus the validation pass); its start-up is process start to its first line, and
# summary.json's first_step_seconds (the command's start to the end of its first step).
# Usage: bench/train_fmnist.sh [KILN_BINARY] [DEVICE_SPEC]
set -euo pipefail
bin="${1:-build/kiln}"
device="${2:-pocl}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$here/../models/fashion_mnist_mlp.yaml"
run_dir="$(mktemp -d)"; stamped="$(mktemp)"
trap 'rm -rf "$run_dir" "$stamped"' EXIT
n_train=54000

now() { date +%s.%N; }
t0="$(now)"
"$bin" train "$config" --device "$device" --set train.epochs=1 --set train.schedule=constant \
  --set "train.callbacks.checkpoint.path=$run_dir/best.safetensors" --run-dir "$run_dir" |
  while IFS= read -r line; do echo "$(now) $line"; done > "$stamped"
sed 's/^[0-9.]* //' "$stamped" >&2
t_header="$(awk '$2 == "training" { print $1; exit }' "$stamped")"
epoch_s="$(awk -F, 'NR == 2 { print $NF }' "$run_dir/log.csv")"
kiln_sps="$(awk -v s="$epoch_s" -v n="$n_train" 'BEGIN { printf "%.0f", n / s }')"
to_header="$(awk -v a="$t0" -v b="$t_header" 'BEGIN { printf "%.2f", b - a }')"
to_step="$(sed -n 's/^ *"first_step_seconds": \([0-9.eE+-]*\).*/\1/p' "$run_dir/summary.json" |
           awk '{ printf "%.2f", $1 }')"

# torch threads, OpenBLAS threads: matched at 1 and 2, and the shared notes' best setting.
declare -A torch_sps torch_train_sps
settings="1:1 2:2 1:2"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  for s in $settings; do
    out="$(OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS="${s#*:}" \
           /usr/bin/python3 "$here/torch_train_fmnist.py" "${s%%:*}")"
    torch_sps[$s]="$(awk '$1 == "epoch_sps" { print $2 }' <<< "$out")"
    torch_train_sps[$s]="$(awk '$1 == "train_sps" { print $2 }' <<< "$out")"
  done
else
  echo "bench/train_fmnist.sh: python3-torch is not installed; no PyTorch rows" >&2
fi

echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "| run | epoch s | samples/s (train + val pass) | samples/s (train only) |"
echo "| --- | ---: | ---: | ---: |"
echo "| kiln on $device | $epoch_s | $kiln_sps | - |"
best=0
for s in $settings; do
  [ -n "${torch_sps[$s]:-}" ] || continue
  secs="$(awk -v n="$n_train" -v r="${torch_sps[$s]}" 'BEGIN { printf "%.2f", n / r }')"
  echo "| PyTorch CPU, torch ${s%%:*} thread(s), OpenBLAS ${s#*:} | $secs | ${torch_sps[$s]} | ${torch_train_sps[$s]} |"
  [ "${torch_sps[$s]}" -gt "$best" ] && best="${torch_sps[$s]}"
done
ratio="$(awk -v k="$kiln_sps" -v b="$best" 'BEGIN { if (b > 0) printf "%.3f", k / b; else print "-" }')"
echo
echo "kiln / best PyTorch: $ratio"
echo "kiln start-up: ${to_header} s from process start to its first line (config, data load and"
echo "preprocessing), ${to_step} s to the end of the first training step (summary.json)"
echo "RESULT kiln_sps=$kiln_sps torch_best_sps=$best ratio=$ratio"
