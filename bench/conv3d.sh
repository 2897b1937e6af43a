#!/usr/bin/env bash
# Runs bench/conv3d (Kiln on an OpenCL device) and bench/torch_conv3d.py (PyTorch on this CPU,
# at 1 and at 2 torch threads, each cell the better of the two) on the seg3d U-Net's conv3d
# layers, and prints one table: ms forward and backward, GFLOP/s, the speed ratio Kiln/PyTorch,
# a U-Net step total (each layer times its count; the first layer's backward without dx), the
# FLOP floor at PEAK_GFLOPS, and a last line "RESULT key=value ..." with the ratios.
# Usage: bench/conv3d.sh [BENCH_CONV3D_BINARY] [DEVICE_SPEC]
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # bench/timing.py is imported; leave no __pycache__ in the tree
bin="${1:-build/bench/bench_conv3d}"
device="${2:-pocl}"
peak="${PEAK_GFLOPS:-469}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kiln_out="$(mktemp)"; torch1="$(mktemp)"; torch2="$(mktemp)"
trap 'rm -f "$kiln_out" "$torch1" "$torch2"' EXIT

"$bin" "$device" | tee "$kiln_out" >&2
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  # Two cores in all: OpenBLAS (used by torch only off its oneDNN path) gets what torch leaves.
  KILN_BENCH_TORCH_THREADS=1 OPENBLAS_NUM_THREADS=2 OPENBLAS_CORETYPE=SkylakeX \
    /usr/bin/python3 "$here/torch_conv3d.py" < "$kiln_out" | tee "$torch1" >&2
  KILN_BENCH_TORCH_THREADS=2 OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=SkylakeX \
    /usr/bin/python3 "$here/torch_conv3d.py" < "$kiln_out" | tee "$torch2" >&2
else
  echo "bench/conv3d.sh: python3-torch is not installed; the PyTorch columns stay empty" >&2
fi

echo "date: $(date -u +%Y-%m-%d), host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
grep '^# device' "$kiln_out" || true
grep -h '^# torch' "$torch1" "$torch2" || true
awk -v t1="$torch1" -v t2="$torch2" -v peak="$peak" '
  function load(file, tag,   line, f) {
    while ((getline line < file) > 0) {
      if (line ~ /^#/) continue
      split(line, f, " ")
      for (c = 2; c <= 4; c++) {
        if (!((f[1], c) in cpu) || f[c] + 0 < cpu[f[1], c] + 0) { cpu[f[1], c] = f[c]; thr[f[1], c] = tag }
      }
    }
  }
  function ratio(torch_ms, kiln_ms) { return (torch_ms > 0 && kiln_ms > 0) ? sprintf("%.3f", torch_ms / kiln_ms) : "-" }
  function ms(v) { return v > 0 ? sprintf("%.3f", v) : "-" }
  function rate(flop, v) { return v > 0 ? sprintf("%.1f", flop / v / 1e6) : "-" }
  BEGIN { load(t1, "1t"); load(t2, "2t") }
  /^#/ || NF < 7 { next }
  {
    key = $1; n_l++; order[n_l] = key; xs[key] = $2; wsh[key] = $3; count[key] = $4
    kf[key] = $5; kb[key] = $6; kn[key] = $7
    x = $2; w = $3; gsub(/[()]/, "", x); gsub(/[()]/, "", w); split(x, xd, ","); split(w, wd, ",")
    flop[key] = 2.0 * xd[1] * wd[1] * xd[3] * xd[4] * xd[5] * wd[2] * wd[3] * wd[4] * wd[5]
  }
  END {
    printf "| layer | x | w | per step | Kiln fwd ms | Kiln bwd ms | PyTorch fwd ms | PyTorch bwd ms | Kiln GFLOP/s fwd / bwd | PyTorch GFLOP/s fwd / bwd | Kiln/PyTorch fwd | Kiln/PyTorch bwd |\n"
    printf "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    result = ""
    for (i = 1; i <= n_l; i++) {
      k = order[i]; pf = cpu[k, 2] + 0; pb = cpu[k, 3] + 0
      printf "| %s | %s | %s | %d | %s | %s | %s %s | %s %s | %s / %s | %s / %s | %s | %s |\n", k, xs[k], wsh[k], count[k],
        ms(kf[k]), ms(kb[k]), ms(pf), thr[k, 2], ms(pb), thr[k, 3],
        rate(flop[k], kf[k]), rate(2 * flop[k], kb[k]), rate(flop[k], pf), rate(2 * flop[k], pb),
        ratio(pf, kf[k]), ratio(pb, kb[k])
      result = result sprintf(" fwd_%s=%s bwd_%s=%s", k, ratio(pf, kf[k]), k, ratio(pb, kb[k]))
      # The step: every layer times its count; the first layer (input, no gradient) skips dx.
      nodx = (i == 1)
      sf_k += count[k] * kf[k]; sf_p += count[k] * pf; s_flop_f += count[k] * flop[k]
      sb_k += count[k] * (nodx ? kn[k] : kb[k]); sb_p += count[k] * (nodx ? cpu[k, 4] : pb)
      s_flop_b += count[k] * (nodx ? 1 : 2) * flop[k]
    }
    printf "| **U-Net step** | | | | **%.2f** | **%.2f** | **%.2f** | **%.2f** | %s / %s | %s / %s | **%s** | **%s** |\n",
      sf_k, sb_k, sf_p, sb_p, rate(s_flop_f, sf_k), rate(s_flop_b, sb_k), rate(s_flop_f, sf_p), rate(s_flop_b, sb_p),
      ratio(sf_p, sf_k), ratio(sb_p, sb_k)
    s_flop = s_flop_f + s_flop_b
    printf "\nstep: %.3f GFLOP of convolution (%.3f fwd, %.3f bwd); floor at %d GFLOP/s: %.2f ms; Kiln %.2f ms (%.1f%% of peak), PyTorch %.2f ms (%.1f%% of peak); Kiln/PyTorch speed %s\n",
      s_flop / 1e9, s_flop_f / 1e9, s_flop_b / 1e9, peak, s_flop / peak / 1e6, sf_k + sb_k,
      100 * s_flop / (sf_k + sb_k) / 1e6 / peak, sf_p + sb_p, (sf_p + sb_p > 0) ? 100 * s_flop / (sf_p + sb_p) / 1e6 / peak : 0,
      ratio(sf_p + sb_p, sf_k + sb_k)
    printf "RESULT%s step_fwd=%s step_bwd=%s step=%s\n", result, ratio(sf_p, sf_k), ratio(sb_p, sb_k), ratio(sf_p + sb_p, sf_k + sb_k)
  }' "$kiln_out"
