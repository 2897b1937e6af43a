#!/usr/bin/env bash
# Runs bench/ops (Kiln on an OpenCL device), bench/ops again with KILN_GEMM=clblast for its GEMM
# rows (CLBlast with its default parameters on the same device), and bench/torch_ops.py
# (PyTorch/OpenBLAS on this CPU, OPENBLAS_CORETYPE=SkylakeX) one after the other and prints one
# table: each Kiln rate beside the device's own ceiling (copy bandwidth for bandwidth rows, the
# best GEMM row for compute rows), beside the CPU library's rate and, for GEMM rows, beside
# CLBlast's, as ratios. KILN_BENCH_ONLY=PREFIX keeps the rows whose key starts with it on every
# side (`KILN_BENCH_ONLY=gemm` is the GEMM benchmark, `bench-gemm`). When there are GEMM rows it
# ends with one line (ratios are Kiln's rate over the other's; "min" is the worst row, "_at"
# names it, "geomean" is over every GEMM row):
#   RESULT gemm_1024_vs_openblas=R gemm_min_vs_openblas=R gemm_min_vs_openblas_at=KEY
#          gemm_geomean_vs_openblas=R gemm_1024_vs_clblast=R gemm_min_vs_clblast=R
#          gemm_min_vs_clblast_at=KEY gemm_geomean_vs_clblast=R
# The row gemm_launch is a 1 x 1 x 1 product's time in microseconds: the launch floor. Each GEMM
# row's "library time / launch" is the library's time for that row over the floor, the best
# kiln / library ratio any product taking one launch could reach there. With that row, RESULT
# also has gemm_min_openblas_us=T (the library's time at the worst row), gemm_min_bound_vs_openblas=R
# (that time over the floor) and gemm_launch_us=T.
# A ratio is "-" when its column is empty. KILN_BENCH_TORCH_DEVICE=cuda (with KILN_BENCH_PYTHON,
# the Python that has a CUDA torch; default /usr/bin/python3) takes the library column from
# PyTorch on a CUDA GPU instead (cuBLAS, cuDNN; float32, no TF32), for Kiln on that GPU; the
# RESULT keys then say "cublas" for "openblas".
# Usage: bench/ops.sh [BENCH_OPS_BINARY] [DEVICE_SPEC]
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # bench/timing.py is imported; leave no __pycache__ in the tree
bin="${1:-build/bench/bench_ops}"
device="${2:-pocl}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kiln_out="$(mktemp)"; clblast_out="$(mktemp)"; torch_out="$(mktemp)"
trap 'rm -f "$kiln_out" "$clblast_out" "$torch_out"' EXIT

"$bin" "$device" | tee "$kiln_out" >&2
# CLBlast runs the GEMM rows only: those the filter keeps when it names GEMM rows, else all.
only="${KILN_BENCH_ONLY:-}"
clblast_only=""
if [[ "$only" == gemm* ]]; then clblast_only="$only"; elif [[ gemm == "$only"* ]]; then clblast_only=gemm; fi
if [ -n "$clblast_only" ]; then
  echo "# CLBlast (KILN_GEMM=clblast), default parameters:" >&2
  KILN_GEMM=clblast KILN_BENCH_ONLY="$clblast_only" "$bin" "$device" | tee "$clblast_out" >&2
fi
python="${KILN_BENCH_PYTHON:-/usr/bin/python3}"
if [ "${KILN_BENCH_TORCH_DEVICE:-cpu}" = cuda ]; then
  lib_title="PyTorch CUDA"; lib_key=cublas
else
  lib_title="CPU library"; lib_key=openblas
fi
if "$python" -c "import torch" 2>/dev/null; then
  "$python" "$here/torch_ops.py" > "$torch_out"
else
  echo "bench/ops.sh: $python has no torch; the $lib_title column stays empty" >&2
fi

echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
grep '^# device' "$kiln_out" || true
awk -v torch_file="$torch_out" -v clblast_file="$clblast_out" -v lib_title="$lib_title" -v lib_key="$lib_key" '
  BEGIN {
    while ((getline line < torch_file) > 0) { split(line, f, " "); cpu[f[1]] = f[2] }
    while ((getline line < clblast_file) > 0) {
      nf = split(line, f, " ")
      if (line !~ /^#/ && f[1] != "key" && nf >= 5) clb[f[1]] = f[nf - 1]
    }
  }
  function ratio(a, b) { return (b + 0 > 0) ? sprintf("%.3f", a / b) : "-" }
  # " gemm_1024_vs_NAME=R gemm_min_vs_NAME=R gemm_min_vs_NAME_at=KEY gemm_geomean_vs_NAME=R":
  # Kiln over `other` at 1024^3, at its worst GEMM row (named) and as a geometric mean; against
  # the library, with a gemm_launch row, also the library time at that row and its bound.
  function summary(name, other,    i, k, r, n_r, log_sum, min_r, min_k, at_1024, lib_us, s) {
    n_r = 0; log_sum = 0; min_r = -1; min_k = "-"
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (k !~ /^gemm_/ || unit[k] != "GFLOP/s" || !(k in other) || other[k] + 0 <= 0) continue
      r = rate[k] / other[k]; n_r++; log_sum += log(r)
      if (min_r < 0 || r < min_r) { min_r = r; min_k = k }
    }
    at_1024 = ("gemm_1024" in rate && "gemm_1024" in other) ? ratio(rate["gemm_1024"], other["gemm_1024"]) : "-"
    s = sprintf(" gemm_1024_vs_%s=%s gemm_min_vs_%s=%s gemm_min_vs_%s_at=%s gemm_geomean_vs_%s=%s",
                name, at_1024, name, n_r > 0 ? sprintf("%.3f", min_r) : "-", name, min_k,
                name, n_r > 0 ? sprintf("%.3f", exp(log_sum / n_r)) : "-")
    if (name == lib_key && ("gemm_launch" in rate) && n_r > 0) {
      lib_us = 1000 * ms[min_k] * rate[min_k] / other[min_k]  # its FLOPs at the library rate
      s = s sprintf(" gemm_min_%s_us=%.2f gemm_min_bound_vs_%s=%.3f", name, lib_us, name,
                    lib_us / rate["gemm_launch"])
    }
    return s
  }
  /^#/ || /^key/ { next }
  NF >= 5 { key = $1; rate[key] = $(NF-1); unit[key] = $NF; ms[key] = $(NF-2); order[++n] = key
            shape[key] = ""; for (i = 2; i <= NF - 3; i++) shape[key] = shape[key] (i > 2 ? " " : "") $i }
  END {
    printf "| row | shape | kiln | unit | of device ceiling | %s | kiln / library | library time / launch | CLBlast | kiln / CLBlast |\n", lib_title
    printf "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    best_gemm = 0; n_gemm = 0
    for (i = 1; i <= n; i++)
      if (order[i] ~ /^gemm_/ && unit[order[i]] == "GFLOP/s") {
        n_gemm++; if (rate[order[i]] + 0 > best_gemm) best_gemm = rate[order[i]] + 0
      }
    for (i = 1; i <= n; i++) {
      k = order[i]
      ceil = (unit[k] == "GB/s") ? rate["copy"] : (unit[k] == "GFLOP/s") ? best_gemm : 0
      frac = (ceil > 0) ? sprintf("%.2f", rate[k] / ceil) : "-"
      c = (k in cpu) ? cpu[k] : "-"
      b = (k in clb) ? clb[k] : "-"
      rates = (unit[k] != "us")  # a time (the launch floor) is not set against a rate
      bound = "-"
      if (unit[k] == "GFLOP/s" && (k in cpu) && cpu[k] + 0 > 0 && rate["gemm_launch"] + 0 > 0)
        bound = sprintf("%.2f", 1000 * ms[k] * rate[k] / cpu[k] / rate["gemm_launch"])
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k, shape[k], rate[k], unit[k],
             frac, c, (rates && (k in cpu)) ? ratio(rate[k], cpu[k]) : "-", bound, b,
             (rates && (k in clb)) ? ratio(rate[k], clb[k]) : "-"
    }
    launch = ("gemm_launch" in rate) ? sprintf(" gemm_launch_us=%s", rate["gemm_launch"]) : ""
    if (n_gemm > 0) print "RESULT" summary(lib_key, cpu) summary("clblast", clb) launch
  }' "$kiln_out"
