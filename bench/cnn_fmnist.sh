#!/usr/bin/env bash
# The performance issue's CNN measure: one epoch of models/fashion_mnist_cnn.yaml (conv3x3 32,
# pool, conv3x3 64, pool, dense 128, dense 10; batch 64, Adam lr 1e-3, constant rate) with
# `kiln train` on an OpenCL device beside PyTorch on this CPU (bench/torch_train_fmnist.py cnn,
# the same network, split and preprocessing) at torch/OpenBLAS threads 1/1, 2/2, 1/2 and 2/1
# (OPENBLAS_CORETYPE=SkylakeX); samples/s of the epoch (the training pass plus the validation
# pass, as Kiln's log.csv counts it, over the training samples) and Kiln over PyTorch's best
# setting. Ends with one line:
#   RESULT cnn_kiln_sps=N cnn_torch_best_sps=N cnn_torch_best_at=TORCH/OPENBLAS|cuda|cuda+bench cnn_ratio=R
#          train_samples=N
# KILN_BENCH_SAMPLES=N (default: the whole 60000-sample training file) trains both sides on the
# file's first N samples (90% for training, 10% held out for validation; a test split of N/6),
# for a quick smoke run; the figures of a full epoch need the default.
# KILN_BENCH_TORCH_DEVICE=cuda (and KILN_BENCH_PYTHON, see bench/torch_side.sh) runs the
# PyTorch side on a CUDA GPU instead, for Kiln on that GPU.
# Usage: bench/cnn_fmnist.sh [KILN_BINARY] [DEVICE_SPEC]
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
bin="${1:-build/kiln}"
device="${2:-pocl}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$here/../models/fashion_mnist_cnn.yaml"
data=/usr/share/datasets/fashion-mnist
samples="${KILN_BENCH_SAMPLES:-0}"
run_dir="$(mktemp -d)"
trap 'rm -rf "$run_dir"' EXIT
. "$here/torch_side.sh"
settings="$(torch_settings "1:1 2:2 1:2 2:1")"

# Writes the first n items of the (gzipped) IDX file src to dst, uncompressed: its header with
# the item count replaced, then n items of `item` bytes.
idx_head() {
  local src="$1" dst="$2" n="$3" header="$4" item="$5" count
  gzip -dc "$src" > "$dst.full"
  count="$(printf '\\%03o\\%03o\\%03o\\%03o' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))"
  { head -c 4 "$dst.full"; printf "$count"; head -c $((header + n * item)) "$dst.full" | tail -c +9; } > "$dst"
  rm -f "$dst.full"
}

overrides=(--set train.epochs=1 --set train.schedule=constant
           --set "train.callbacks.checkpoint.path=$run_dir/best.safetensors")
torch_samples=()
if [ "$samples" -gt 0 ]; then
  n_test=$((samples / 6))
  idx_head "$data/train-images-idx3-ubyte.gz" "$run_dir/train-images-idx3-ubyte" "$samples" 16 784
  idx_head "$data/train-labels-idx1-ubyte.gz" "$run_dir/train-labels-idx1-ubyte" "$samples" 8 1
  idx_head "$data/t10k-images-idx3-ubyte.gz" "$run_dir/t10k-images-idx3-ubyte" "$n_test" 16 784
  idx_head "$data/t10k-labels-idx1-ubyte.gz" "$run_dir/t10k-labels-idx1-ubyte" "$n_test" 8 1
  overrides+=(--set "data.train.images=$run_dir/train-images-idx3-ubyte"
              --set "data.train.labels=$run_dir/train-labels-idx1-ubyte"
              --set "data.test.images=$run_dir/t10k-images-idx3-ubyte"
              --set "data.test.labels=$run_dir/t10k-labels-idx1-ubyte")
  torch_samples=(--samples "$samples")
fi

"$bin" train "$config" --device "$device" --run-dir "$run_dir/kiln" "${overrides[@]}" \
  > "$run_dir/kiln.out" 2> "$run_dir/kiln.err" || { cat "$run_dir/kiln.out" "$run_dir/kiln.err" >&2; exit 2; }
cat "$run_dir/kiln.out" >&2
# "training NAME on DEVICE: N train, ..." says how many samples the epoch trained on.
n_train="$(sed -n 's/^training .*: \([0-9]*\) train, .*/\1/p' "$run_dir/kiln.out")"
epoch_s="$(awk -F, 'NR == 2 { print $NF }' "$run_dir/kiln/log.csv")"
kiln_sps="$(awk -v s="$epoch_s" -v n="$n_train" 'BEGIN { printf "%.0f", n / s }')"

best=0; best_at="-"
row="| $kiln_sps ($epoch_s s)"
for s in $settings; do
  sps="$(torch_sps "$s" cnn adam "${torch_samples[@]}")"
  row="$row | ${sps:--}"
  if [ -n "$sps" ] && [ "$sps" -gt "$best" ]; then best="$sps"; best_at="${s/:/\/}"; fi
done
ratio="$(awk -v k="$kiln_sps" -v b="$best" 'BEGIN { if (b > 0) printf "%.3f", k / b; else print "-" }')"

echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "one epoch of models/fashion_mnist_cnn.yaml, $n_train training samples, samples/s (training + validation pass)"
echo "| Kiln on $device (epoch) |$(torch_header "$settings") Kiln / best PyTorch |"
echo "| ---: |$(for _ in $settings; do printf ' ---: |'; done) ---: |"
echo "$row | $ratio |"
echo "RESULT cnn_kiln_sps=$kiln_sps cnn_torch_best_sps=$best cnn_torch_best_at=$best_at cnn_ratio=$ratio train_samples=$n_train"
