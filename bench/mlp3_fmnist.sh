#!/usr/bin/env bash
# The performance issue's MLP measure: Fashion-MNIST 784-256-128-10 (no dropout), batch 128,
# one epoch with SGD (lr 0.01, momentum 0.9) and with Adam (lr 1e-3), Kiln on an OpenCL device
# (models/fashion_mnist_mlp.yaml with the layers and optimiser overridden, constant rate) beside
# PyTorch on this CPU (bench/torch_train_fmnist.py mlp3) at torch/OpenBLAS threads 1/1, 2/2
# and 1/2; samples/s of the epoch (training plus the validation pass, as Kiln's log.csv counts
# it) and Kiln over PyTorch's best setting. Ends with one RESULT line.
# KILN_BENCH_TORCH_DEVICE=cuda (and KILN_BENCH_PYTHON, see bench/torch_side.sh) runs the
# PyTorch side on a CUDA GPU instead, for Kiln on that GPU.
# Usage: bench/mlp3_fmnist.sh [KILN_BINARY] [DEVICE_SPEC]
set -euo pipefail
bin="${1:-build/kiln}"
device="${2:-pocl}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$here/../models/fashion_mnist_mlp.yaml"
layers='[flatten, {dense: {units: 256}}, relu, {dense: {units: 128}}, relu, {dense: {units: 10}}]'
n_train=54000
run_dir="$(mktemp -d)"
trap 'rm -rf "$run_dir"' EXIT
. "$here/torch_side.sh"
settings="$(torch_settings "1:1 2:2 1:2")"
result="RESULT"
echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "| optimiser | Kiln on $device, samples/s |$(torch_header "$settings") Kiln / best PyTorch |"
echo "| --- | ---: |$(for _ in $settings; do printf ' ---: |'; done) ---: |"
for optim in sgd adam; do
  if [ "$optim" = sgd ]; then opt='{sgd: {lr: 0.01, momentum: 0.9}}'; else opt='{adam: {lr: 0.001}}'; fi
  rm -rf "$run_dir/$optim"
  "$bin" train "$config" --device "$device" --quiet --run-dir "$run_dir/$optim" \
    --set train.epochs=1 --set train.schedule=constant --set "model.layers=$layers" \
    --set "train.optimizer=$opt" --set "train.callbacks.checkpoint.path=$run_dir/$optim/best.safetensors" \
    >/dev/null 2>&1
  epoch_s="$(awk -F, 'NR == 2 { print $NF }' "$run_dir/$optim/log.csv")"
  kiln_sps="$(awk -v s="$epoch_s" -v n="$n_train" 'BEGIN { printf "%.0f", n / s }')"
  row="| $optim | $kiln_sps"
  best=0
  for s in $settings; do
    sps="$(torch_sps "$s" mlp3 "$optim")"
    row="$row | ${sps:--}"
    if [ -n "$sps" ] && [ "$sps" -gt "$best" ]; then best="$sps"; fi
  done
  ratio="$(awk -v k="$kiln_sps" -v b="$best" 'BEGIN { if (b > 0) printf "%.3f", k / b; else print "-" }')"
  echo "$row | $ratio |"
  result="$result ${optim}_kiln_sps=$kiln_sps ${optim}_torch_best_sps=$best ${optim}_ratio=$ratio"
done
echo "$result"
