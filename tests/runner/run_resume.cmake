# `kiln train --resume`: trains tiny_resume.yaml for 4 epochs in one run, and for 2 epochs then
# resumed to 4 in another run directory; the resumed run's log.jsonl must hold 4 epochs whose
# lines for epochs 3 and 4 (without the seconds) equal the uninterrupted run's, and both runs
# must print the same epoch 3 and 4 lines and the same test line, and its plot.svg (built from
# all 4 epochs, the 2 before the resume read back from log.csv) must equal the whole run's.
# A resume with another config (here a --set batch size) must fail with exit status 2, name
# the key that differs, and leave the run directory's config.yaml alone.
# -DKILN=path -DCONFIG=path -DRUN_DIR=path (two directories are made below it)
file(REMOVE_RECURSE "${RUN_DIR}")
include("${CMAKE_CURRENT_LIST_DIR}/train_helpers.cmake")
kiln_train(whole --run-dir "${RUN_DIR}/whole")
kiln_train(first --run-dir "${RUN_DIR}/resumed" --set train.epochs=2)
kiln_train(second --resume "${RUN_DIR}/resumed")
if(NOT EXISTS "${RUN_DIR}/resumed/last.safetensors")
  message(FATAL_ERROR "kiln train: ${RUN_DIR}/resumed/last.safetensors was not written")
endif()
if(second MATCHES "epoch [12]/")
  message(FATAL_ERROR "kiln train --resume: repeated epochs 1-2:\n${second}")
endif()

function(epoch_lines text out_var)
  string(REGEX MATCHALL "epoch [34]/4[^\n]*|test:[^\n]*" lines "${text}")
  string(REGEX REPLACE "  [0-9.]+ s" "" lines "${lines}")
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()
epoch_lines("${whole}" whole_lines)
epoch_lines("${second}" second_lines)
list(LENGTH whole_lines n)
if(NOT n EQUAL 3 OR NOT whole_lines STREQUAL second_lines)
  message(FATAL_ERROR "kiln train --resume: epochs 3-4 differ from the uninterrupted run\n"
                      "whole:   ${whole_lines}\nresumed: ${second_lines}")
endif()

function(log_lines dir out_var)
  file(STRINGS "${dir}/log.jsonl" lines)
  string(REGEX REPLACE ", \"seconds\": [0-9.]+" "" lines "${lines}")
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()
log_lines("${RUN_DIR}/whole" whole_log)
log_lines("${RUN_DIR}/resumed" resumed_log)
list(LENGTH resumed_log n)
if(NOT n EQUAL 4 OR NOT whole_log STREQUAL resumed_log)
  message(FATAL_ERROR "kiln train --resume: log.jsonl differs from the uninterrupted run\n"
                      "whole:   ${whole_log}\nresumed: ${resumed_log}")
endif()
file(STRINGS "${RUN_DIR}/resumed/log.csv" csv)
list(LENGTH csv n)
if(NOT n EQUAL 5)
  message(FATAL_ERROR "kiln train --resume: log.csv should hold a header and 4 epochs:\n${csv}")
endif()
file(READ "${RUN_DIR}/whole/plot.svg" whole_svg)
file(READ "${RUN_DIR}/resumed/plot.svg" resumed_svg)
if(NOT whole_svg STREQUAL resumed_svg)
  message(FATAL_ERROR "kiln train --resume: plot.svg differs from the uninterrupted run's")
endif()

file(READ "${RUN_DIR}/resumed/config.yaml" config_before)
execute_process(COMMAND "${KILN}" train "${CONFIG}" --device "${KILN_TEST_DEVICE}" --resume "${RUN_DIR}/resumed"
                        --set train.batch_size=8
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ "${RUN_DIR}/resumed/config.yaml" config_after)
if(NOT rc STREQUAL "2" OR NOT err MATCHES "was trained with a different config: train.batch_size differs"
   OR NOT config_before STREQUAL config_after)
  message(FATAL_ERROR "kiln train --resume with another batch size: exit status ${rc} (expected "
                      "2 naming train.batch_size, config.yaml untouched)\n${out}${err}")
endif()
message(STATUS "kiln train --resume: epochs 3-4, test line, logs and plot equal the whole "
               "run's; a changed config is refused")
