# `kiln eval`, `kiln test` and `kiln predict` on a checkpoint of tests/runner/tiny.yaml that
# this script trains first into its own run directory (tests run in parallel). Checks that
# eval and test print the test line train printed (same weights, same saved preprocessing),
# that eval --split validation runs on the first device `kiln devices` lists, given in P:D
# form (on a machine with PoCL alone, the same device under another spec, standing in for
# "another device than the one that trained"),
# that predict writes one CSV row per sample whose probabilities sum to 1 and whose "class" is
# the highest column, and that a missing checkpoint exits 2 naming the file.
# -DKILN=path -DCONFIG=path -DRUN_DIR=path
include("${CMAKE_CURRENT_LIST_DIR}/test_device.cmake")
file(REMOVE_RECURSE "${RUN_DIR}")
set(ckpt "${RUN_DIR}/best.safetensors")

function(kiln_run expect_rc)
  execute_process(COMMAND "${KILN}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc STREQUAL "${expect_rc}")
    message(FATAL_ERROR "kiln ${ARGN}: exit status ${rc}, expected ${expect_rc}\n${out}${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(all "${out}${err}" PARENT_SCOPE)
endfunction()

function(test_line text var)
  if(NOT text MATCHES "test: loss [0-9.e+-]+ accuracy [0-9.]+")
    message(FATAL_ERROR "no test line in:\n${text}")
  endif()
  set(${var} "${CMAKE_MATCH_0}" PARENT_SCOPE)
endfunction()

kiln_run(0 train "${CONFIG}" --device "${KILN_TEST_DEVICE}" --quiet --run-dir "${RUN_DIR}"
         --set "train.callbacks.checkpoint={path: ${ckpt}, monitor: val_loss}")
test_line("${out}" trained)

kiln_run(0 eval "${CONFIG}" --checkpoint "${ckpt}" --device "${KILN_TEST_DEVICE}")
test_line("${out}" evaluated)
if(NOT evaluated STREQUAL trained)
  message(FATAL_ERROR "kiln eval printed '${evaluated}', train printed '${trained}'")
endif()
kiln_run(0 test "${CONFIG}" --checkpoint "${ckpt}" --device "${KILN_TEST_DEVICE}")
test_line("${out}" tested)
if(NOT tested STREQUAL trained)
  message(FATAL_ERROR "kiln test printed '${tested}', train printed '${trained}'")
endif()

kiln_run(0 devices)
if(NOT out MATCHES "[0-9]+ +([0-9]+:[0-9]+) ")
  message(FATAL_ERROR "no device in P:D form in `kiln devices`:\n${out}")
endif()
set(pd "${CMAKE_MATCH_1}")
kiln_run(0 eval "${CONFIG}" --checkpoint "${ckpt}" --split validation --device "${pd}")
if(NOT out MATCHES "^validation: loss [0-9.e+-]+ accuracy [0-9.]+")
  message(FATAL_ERROR "kiln eval --split validation: unexpected output\n${all}")
endif()

# Predict: tiny.csv still has its label column, which predict drops.
get_filename_component(dir "${CONFIG}" DIRECTORY)
kiln_run(0 predict --checkpoint "${ckpt}" --input "${dir}/tiny.csv" --output
         "${RUN_DIR}/predictions.csv" --device "${pd}")
file(STRINGS "${RUN_DIR}/predictions.csv" rows)
list(POP_FRONT rows header)
list(LENGTH rows n)
if(NOT header STREQUAL "p_0,p_1,p_2,class" OR NOT n EQUAL 240)
  message(FATAL_ERROR "predictions.csv: header '${header}' and ${n} rows, expected 240")
endif()
# No floats in CMake: each probability becomes millionths (truncated; e-notation is ~0).
foreach(row IN LISTS rows)
  string(REPLACE "," ";" cells "${row}")
  list(POP_BACK cells class)
  set(sum 0)
  set(best -1)
  set(best_at -1)
  set(i 0)
  foreach(cell IN LISTS cells)
    set(micro 0)
    if(NOT cell MATCHES "e-" AND cell MATCHES "^([0-9])(\\.([0-9]*))?$")
      set(whole "${CMAKE_MATCH_1}")
      string(SUBSTRING "${CMAKE_MATCH_3}000000" 0 6 frac)
      math(EXPR micro "${whole} * 1000000 + 1${frac} - 1000000") # no leading zeros
    endif()
    math(EXPR sum "${sum} + ${micro}")
    if(micro GREATER best)
      set(best ${micro})
      set(best_at ${i})
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
  if(sum LESS 999990 OR sum GREATER 1000010)
    message(FATAL_ERROR "predictions.csv: probabilities of '${row}' sum to ${sum} millionths")
  endif()
  if(NOT class EQUAL best_at)
    message(FATAL_ERROR "predictions.csv: class of '${row}' is not the highest column")
  endif()
endforeach()

kiln_run(2 eval "${CONFIG}" --checkpoint "${RUN_DIR}/missing.safetensors")
if(NOT all MATCHES "missing\\.safetensors")
  message(FATAL_ERROR "kiln eval with a missing checkpoint does not name it:\n${all}")
endif()
message(STATUS "kiln eval/test/predict: outputs as expected")
