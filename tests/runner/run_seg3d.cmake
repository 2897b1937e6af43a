# The issue's 3D segmentation checks, end to end on PoCL:
# 1. models/seg3d_unet.yaml trains and reaches test Dice >= 0.90 on its held-out synthetic
#    volumes; every epoch line shows train_mode_loss and eval_mode_loss (diagnose.eval_train
#    with threshold 0.1), and the last epoch has no warning: on the training split the two
#    modes agree within 10% at the end of the run;
# 2. models/seg3d_bn_pitfall.yaml (batches of 2, batch-norm momentum 0.001: running statistics
#    that stay at their start over a short run) makes diagnose warn.
# -DKILN=path -DSOURCE_DIR=path -DRUN_DIR=path -DMODEL=seg3d_unet|seg3d_bn_pitfall
file(REMOVE_RECURSE "${RUN_DIR}")
set(CONFIG "${SOURCE_DIR}/models/${MODEL}.yaml")
include("${CMAKE_CURRENT_LIST_DIR}/train_helpers.cmake")
kiln_train(out --run-dir "${RUN_DIR}")
message(STATUS "${out}")
if(MODEL STREQUAL "seg3d_unet")
  string(REGEX MATCH "test: loss [0-9.e+-]+ dice ([0-9.]+)" test_line "${out}")
  if(NOT test_line OR CMAKE_MATCH_1 LESS 0.90)
    message(FATAL_ERROR "seg3d_unet: test Dice below 0.90 (or no test line): '${test_line}'")
  endif()
  string(REGEX MATCHALL "epoch [0-9]+/[0-9]+ [^\n]*" epochs "${out}")
  list(LENGTH epochs n)
  list(GET epochs -1 last)
  if(n LESS 1 OR NOT last MATCHES "train_mode_loss [0-9.e+-]+  eval_mode_loss [0-9.e+-]+")
    message(FATAL_ERROR "seg3d_unet: the epoch lines lack the diagnose losses:\n${out}")
  endif()
  string(REGEX MATCH "epoch ([0-9]+)/" unused "${last}")
  if(out MATCHES "warning: epoch ${CMAKE_MATCH_1}: on the training split")
    message(FATAL_ERROR "seg3d_unet: at the end of the run the train-mode and eval-mode losses "
                        "differ by more than 10%:\n${out}")
  endif()
else()
  if(NOT out MATCHES "warning: epoch [0-9]+: on the training split the loss is [0-9.e+-]+ in eval mode")
    message(FATAL_ERROR "${MODEL}: diagnose.eval_train did not warn:\n${out}")
  endif()
endif()
