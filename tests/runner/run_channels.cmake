# per_channel standardize and train.drop_last reach training (tests/runner/channels.yaml). The
# model's output is the sum of its 4 preprocessed inputs (dense, weights 1, bias 0, learning
# rate 1e-30: nothing moves), targets 0, 0, 1000, mse loss, batches of 2 in file order.
# per_channel fits channel 0 on {0, 4, 2, 6, 3, 3}: mean 3, variance 10/3; channel 1 is all 0
# (std 0 -> 1). Sample 0 sums to (-3 + 1) / sqrt(10/3) = -1.095, sample 1 to +1.095, sample 2
# to 0. With drop_last the one batch is samples 0 and 1: loss (1.2 + 1.2) / 2 = 1.2 exactly
# (global standardize would give 1.021, per_feature 2.571, none 40). Without drop_last the
# final batch is sample 2 (repeated to fill the batch): loss 1000^2 = 1e6 there, and the
# epoch's mean over 2 batches prints 5e+05. The checkpoint holds the per-channel statistics:
# 2 values each, for predict and eval to reuse.
# -DKILN=path -DCONFIG=path -DRUN_DIR=path
include("${CMAKE_CURRENT_LIST_DIR}/test_device.cmake")
file(REMOVE_RECURSE "${RUN_DIR}")
foreach(drop_last true false)
  execute_process(COMMAND "${KILN}" train "${CONFIG}" --device "${KILN_TEST_DEVICE}" --run-dir "${RUN_DIR}/${drop_last}"
                          --set "train.drop_last=${drop_last}"
                          --set "train.callbacks.checkpoint.path=${RUN_DIR}/${drop_last}/ck.safetensors"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "kiln train (drop_last ${drop_last}): exit status ${rc}\n${out}${err}")
  endif()
  if(drop_last)
    set(want "epoch 1/1  loss 1\\.2  ")
  else()
    set(want "epoch 1/1  loss 5e\\+05  ")
  endif()
  if(NOT out MATCHES "${want}")
    message(FATAL_ERROR "kiln train (drop_last ${drop_last}): expected '${want}':\n${out}${err}")
  endif()
endforeach()
# The JSON header follows an 8-byte length (with zero bytes, which CMake strings cannot hold).
file(READ "${RUN_DIR}/true/ck.safetensors" header OFFSET 8 LIMIT 4096)
foreach(stat mean std)
  set(re "\"extra/preprocess\\.0\\.standardize_channels\\.${stat}\":{\"dtype\":\"F32\",\"shape\":\\[2\\]")
  if(NOT header MATCHES "${re}")
    message(FATAL_ERROR "the checkpoint has no per-channel ${stat} of shape (2):\n${header}")
  endif()
endforeach()
message(STATUS "per_channel and drop_last reach training: losses 1.2 and 5e+05, statistics saved")
