# diagnose.eval_train on tiny.yaml with a batch-norm layer:
# 1. a sound run (batch 16, momentum 0.1) logs train_mode_loss and eval_mode_loss every epoch
#    and does not warn; the same run without diagnose prints the same losses and test line, so
#    scoring the training split left the weights and the running statistics alone;
# 2. the pitfall (batch 2, momentum 0.9: running statistics that follow the last tiny batch)
#    warns with the eval-mode and train-mode losses and the gap.
# -DKILN=path -DCONFIG=path -DRUN_DIR=path
file(REMOVE_RECURSE "${RUN_DIR}")
include("${CMAKE_CURRENT_LIST_DIR}/train_helpers.cmake")
macro(kiln_train_layers out_var dir layers)
  kiln_train(${out_var} --run-dir "${RUN_DIR}/${dir}" --set train.epochs=3
             --set "model.layers=${layers}" ${ARGN})
endmacro()
set(sound "[{dense: {units: 16}}, batchnorm, relu, {dense: {units: 3}}]")
set(pitfall "[{dense: {units: 16}}, {batchnorm: {momentum: 0.9}}, relu, {dense: {units: 3}}]")
set(diagnose "train.callbacks.diagnose={eval_train: true}")

kiln_train_layers(with sound "${sound}" --set "${diagnose}")
kiln_train_layers(without plain "${sound}")
if(with MATCHES "warning: epoch")
  message(FATAL_ERROR "diagnose warned on a sound batch-norm run:\n${with}")
endif()
string(REGEX MATCHALL "epoch [1-3]/3 [^\n]*" lines "${with}")
list(LENGTH lines n)
if(NOT n EQUAL 3 OR NOT lines MATCHES
   "val_accuracy [0-9.]+  train_mode_loss [0-9.e+-]+  eval_mode_loss [0-9.e+-]+  lr")
  message(FATAL_ERROR "diagnose: the epoch lines lack train_mode_loss and eval_mode_loss:\n${with}")
endif()
file(STRINGS "${RUN_DIR}/sound/log.csv" header LIMIT_COUNT 1)
if(NOT header MATCHES ",train_mode_loss,eval_mode_loss,lr,")
  message(FATAL_ERROR "diagnose: log.csv header lacks the two losses: ${header}")
endif()
string(REGEX REPLACE "  train_mode_loss [^ ]+  eval_mode_loss [^ ]+" "" with_plain "${lines}")
string(REGEX MATCHALL "epoch [1-3]/3 [^\n]*|test:[^\n]*" plain_lines "${without}")
string(REGEX MATCH "test:[^\n]*" with_test "${with}")
list(APPEND with_plain "${with_test}")
string(REGEX REPLACE "  [0-9.]+ s" "" with_plain "${with_plain}")
string(REGEX REPLACE "  [0-9.]+ s" "" plain_lines "${plain_lines}")
if(NOT with_plain STREQUAL plain_lines)
  message(FATAL_ERROR "diagnose changed the training run:\nwith:    ${with_plain}\n"
                      "without: ${plain_lines}")
endif()

kiln_train_layers(bad pitfall "${pitfall}" --set "${diagnose}" --set train.batch_size=2)
if(NOT bad MATCHES "warning: epoch [1-3]: on the training split the loss is [0-9.e+-]+ in eval mode but [0-9.e+-]+ in train mode \\(a [0-9]+% gap, threshold 25%\\)")
  message(FATAL_ERROR "diagnose did not warn on the batch-norm pitfall:\n${bad}")
endif()
message(STATUS "diagnose.eval_train: logged, silent on a sound run, warns on the pitfall")
