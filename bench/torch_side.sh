# Sourced by bench/mlp3_fmnist.sh and bench/cnn_fmnist.sh: the PyTorch side of a training
# comparison, on the CPU (the default) or on a CUDA GPU, the hardware Kiln runs on.
#   KILN_BENCH_TORCH_DEVICE  cpu (default) or cuda
#   KILN_BENCH_PYTHON        the Python that has torch (default /usr/bin/python3, Debian's)
# On the CPU a setting is TORCH_THREADS:OPENBLAS_THREADS (OPENBLAS_CORETYPE=SkylakeX); on a GPU
# it is "cuda" or "cuda+bench" (cuDNN times its convolution algorithms first).
torch_python="${KILN_BENCH_PYTHON:-/usr/bin/python3}"
torch_device="${KILN_BENCH_TORCH_DEVICE:-cpu}"
case "$torch_device" in
  cpu | cuda) ;;
  *) echo "KILN_BENCH_TORCH_DEVICE must be cpu or cuda, not '$torch_device'" >&2; exit 2 ;;
esac

# torch_settings CPU_SETTINGS: the settings to run, the given CPU ones or the GPU's two.
torch_settings() {
  if [ "$torch_device" = cuda ]; then echo "cuda cuda+bench"; else echo "$1"; fi
}

# torch_sps SETTING ARCH OPTIM [ARGS...]: samples/s of one epoch (training plus validation)
# of bench/torch_train_fmnist.py; prints nothing when the run fails.
torch_sps() {
  local s="$1"; shift
  case "$s" in
    cuda) "$torch_python" "$here/torch_train_fmnist.py" 1 "$@" --device cuda ;;
    cuda+bench) "$torch_python" "$here/torch_train_fmnist.py" 1 "$@" --device cuda --cudnn-benchmark ;;
    *) OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS="${s#*:}" \
         "$torch_python" "$here/torch_train_fmnist.py" "${s%%:*}" "$@" ;;
  esac 2>/dev/null | awk '$1 == "epoch_sps" { print $2 }' || true
}

# torch_header SETTINGS: the table's PyTorch column titles, " PyTorch 1/2 |" each.
torch_header() {
  local s out=""
  for s in $1; do out="$out PyTorch ${s/:/\/} |"; done
  echo "$out"
}
