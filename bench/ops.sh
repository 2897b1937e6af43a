#!/usr/bin/env bash
# Runs bench/ops (Kiln on an OpenCL device) and bench/torch_ops.py (PyTorch/OpenBLAS on this
# CPU) one after the other and prints one table: each Kiln rate beside the device's own
# ceiling (copy bandwidth for bandwidth rows, the best GEMM row for compute rows) and beside
# the CPU library's rate, as ratios. Usage: bench/ops.sh [BENCH_OPS_BINARY] [DEVICE_SPEC]
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # bench/timing.py is imported; leave no __pycache__ in the tree
bin="${1:-build/bench/bench_ops}"
device="${2:-pocl}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kiln_out="$(mktemp)"; torch_out="$(mktemp)"
trap 'rm -f "$kiln_out" "$torch_out"' EXIT

"$bin" "$device" | tee "$kiln_out" >&2
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  /usr/bin/python3 "$here/torch_ops.py" > "$torch_out"
else
  echo "bench/ops.sh: python3-torch is not installed; the CPU column stays empty" >&2
fi

echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
grep '^# device' "$kiln_out" || true
awk -v torch_file="$torch_out" '
  BEGIN { while ((getline line < torch_file) > 0) { split(line, f, " "); cpu[f[1]] = f[2] } }
  /^#/ || /^key/ { next }
  NF >= 5 { key = $1; rate[key] = $(NF-1); unit[key] = $NF; order[++n] = key
            shape[key] = ""; for (i = 2; i <= NF - 3; i++) shape[key] = shape[key] (i > 2 ? " " : "") $i }
  END {
    printf "| row | shape | kiln | unit | of device ceiling | CPU library | kiln / CPU |\n"
    printf "| --- | --- | ---: | --- | ---: | ---: | ---: |\n"
    best_gemm = 0
    for (i = 1; i <= n; i++) if (order[i] ~ /^gemm_/ && rate[order[i]] + 0 > best_gemm) best_gemm = rate[order[i]] + 0
    for (i = 1; i <= n; i++) {
      k = order[i]
      ceil = (unit[k] == "GB/s") ? rate["copy"] : best_gemm
      frac = (ceil > 0) ? sprintf("%.2f", rate[k] / ceil) : "-"
      c = (k in cpu) ? cpu[k] : "-"
      ratio = (k in cpu && cpu[k] > 0) ? sprintf("%.2f", rate[k] / cpu[k]) : "-"
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", k, shape[k], rate[k], unit[k], frac, c, ratio
    }
  }' "$kiln_out"
