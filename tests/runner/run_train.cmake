# Runs `kiln train` on tests/runner/tiny.yaml into a fresh run directory and checks the exit
# status, the epoch lines, the test summary and the files of the run directory (with the
# plot.svg curves and summary.json).
# -DKILN=path -DCONFIG=path -DRUN_DIR=path
file(REMOVE_RECURSE "${RUN_DIR}")
include("${CMAKE_CURRENT_LIST_DIR}/train_helpers.cmake")
kiln_train(all --run-dir "${RUN_DIR}")
set(out "${all_stdout}")
set(err "${all_stderr}")
foreach(re "epoch 1/2  loss [0-9.e+-]+  accuracy [0-9.]+  val_loss [0-9.e+-]+  val_accuracy"
           "epoch 2/2  loss" "test: loss [0-9.e+-]+ accuracy")
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "kiln train: stdout does not match '${re}':\n${all}")
  endif()
endforeach()
foreach(name config.yaml log.jsonl log.csv plot.svg summary.json)
  if(NOT EXISTS "${RUN_DIR}/${name}")
    message(FATAL_ERROR "kiln train: ${RUN_DIR}/${name} was not written")
  endif()
endforeach()
file(STRINGS "${RUN_DIR}/log.jsonl" lines)
list(LENGTH lines n)
if(NOT n EQUAL 2 OR NOT lines MATCHES "\"epoch\": 2, \"loss\": ")
  message(FATAL_ERROR "kiln train: log.jsonl should hold 2 epochs:\n${lines}")
endif()
file(READ "${RUN_DIR}/plot.svg" svg)
if(NOT svg MATCHES "^(<svg|<\\?xml)" OR NOT svg MATCHES "<polyline" OR NOT svg MATCHES "accuracy"
   OR NOT svg MATCHES "validation" OR NOT svg MATCHES "</svg>\n$")
  message(FATAL_ERROR "kiln train: plot.svg lacks the svg element, a polyline, the metric or "
                      "the legend:\n${svg}")
endif()
file(READ "${RUN_DIR}/summary.json" summary)
if(NOT summary MATCHES "\"best_epoch\": " OR NOT summary MATCHES "\"test\": {\"loss\": [0-9]"
   OR NOT summary MATCHES "\"epochs_run\": 2,")
  message(FATAL_ERROR "kiln train: summary.json lacks best_epoch, test or epochs_run:\n${summary}")
endif()
# Steps ran, so the time from the command's start to the end of its first step is a number.
if(NOT summary MATCHES "\"first_step_seconds\": [0-9]")
  message(FATAL_ERROR "kiln train: summary.json lacks first_step_seconds:\n${summary}")
endif()
message(STATUS "kiln train: exit 0, epochs and files as expected")
