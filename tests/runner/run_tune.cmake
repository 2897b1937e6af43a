# `kiln tune` end to end on tiny.yaml, with a cache directory of its own (its results must not
# change what other tests run): tuning records the model's products (forward and both
# backward ones), prints a row per shape and stores the file; `--show` then reports every shape
# as coming from tuning; training reads the file and still trains; a corrupted file is ignored
# with a warning naming it, and the shapes fall back to the defaults; bad options exit 2.
# -DKILN=path -DCONFIG=tiny.yaml -DWORK=dir
include("${CMAKE_CURRENT_LIST_DIR}/train_helpers.cmake")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(ENV{KILN_CACHE_DIR} "${WORK}/cache")

function(kiln_run expect_rc out_var)
  execute_process(COMMAND "${KILN}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc STREQUAL expect_rc)
    message(FATAL_ERROR "kiln ${ARGN}: exit status ${rc}, expected ${expect_rc}\n${out}${err}")
  endif()
  set(${out_var} "${out}${err}" PARENT_SCOPE)
endfunction()

kiln_run(0 tuned tune --device "${KILN_TEST_DEVICE}" --config "${CONFIG}" --no-clblast --budget 300)
# tiny.yaml: batch 16, dense 4 -> 16 -> 3: forward NN 16x16x4 and 16x3x16, weight gradients
# (transposed A) and the input gradient of the second layer (transposed B).
foreach(row "NN 16x16x4" "NN 16x3x16" "TN 4x16x16" "TN 16x3x16" "NT 16x16x3")
  # The tuned form may be in place, packed, or (NT products) dot products.
  if(NOT tuned MATCHES "\\| ${row} \\| kiln [0-9x]+( packed)? \\| [0-9.]+ \\| kiln [0-9x]+( packed| dot)? \\| [0-9.]+")
    message(FATAL_ERROR "kiln tune: no tuned row for ${row}:\n${tuned}")
  endif()
endforeach()
if(NOT tuned MATCHES "results stored in ([^\n]+\\.ktune)")
  message(FATAL_ERROR "kiln tune: no results file named:\n${tuned}")
endif()
set(tuning_file "${CMAKE_MATCH_1}")
if(NOT EXISTS "${tuning_file}")
  message(FATAL_ERROR "kiln tune: ${tuning_file} does not exist")
endif()

kiln_run(0 shown tune --device "${KILN_TEST_DEVICE}" --config "${CONFIG}" --show)
if(NOT shown MATCHES "NN 16x16x4 \\| kiln [^|]+\\| tuning" OR shown MATCHES "\\| default \\|")
  message(FATAL_ERROR "kiln tune --show: not every shape from tuning:\n${shown}")
endif()

kiln_train(trained --run-dir "${WORK}/run")
if(NOT trained MATCHES "test: loss [0-9.]+ accuracy")
  message(FATAL_ERROR "kiln train with tuning results: no test line:\n${trained}")
endif()

file(WRITE "${tuning_file}" "kiln-gemm-tuning 1\ngemm NN 16 16 4 1 1.0 kiln 0x0x0\n")
kiln_run(0 corrupt tune --device "${KILN_TEST_DEVICE}" --config "${CONFIG}" --show)
if(NOT corrupt MATCHES "ignoring the file" OR NOT corrupt MATCHES "NN 16x16x4 \\| kiln [^|]+\\| default")
  message(FATAL_ERROR "kiln tune --show with a corrupt file: no warning or no defaults:\n${corrupt}")
endif()

# --shape: a product of one's own, tuned and then shown beside the config's.
kiln_run(0 one tune --device "${KILN_TEST_DEVICE}" --shape NT:8x9x10x2 --no-clblast --budget 300)
if(NOT one MATCHES "\\| NT 8x9x10 batched x2 \\| kiln [0-9x]+( packed)? \\| [0-9.]+ \\| kiln")
  message(FATAL_ERROR "kiln tune --shape: no tuned row:\n${one}")
endif()
kiln_run(0 shown tune --device "${KILN_TEST_DEVICE}" --shape NT:8x9x10x2 --show)
if(NOT shown MATCHES "NT 8x9x10 batched x2 \\| kiln [^|]+\\| tuning")
  message(FATAL_ERROR "kiln tune --shape --show: not from tuning:\n${shown}")
endif()
kiln_run(2 bad tune --shape NX:1x2x3)
if(NOT bad MATCHES "--shape takes T:MxNxK")
  message(FATAL_ERROR "kiln tune --shape NX:1x2x3: wrong message:\n${bad}")
endif()

foreach(shape "NN:-1x2x3" "NN:1x 2x3" "NN:9223372036854775809x2x2" "NN:2x3x4x" "NN:2x3")
  kiln_run(2 bad tune --shape "${shape}")
  if(NOT bad MATCHES "--shape takes T:MxNxK")
    message(FATAL_ERROR "kiln tune --shape ${shape}: wrong message:\n${bad}")
  endif()
endforeach()
kiln_run(2 bad tune --budget nan)
if(NOT bad MATCHES "--budget takes a number of seconds > 0")
  message(FATAL_ERROR "kiln tune --budget nan: wrong message:\n${bad}")
endif()
kiln_run(2 bad tune --budget 0)
if(NOT bad MATCHES "--budget takes a number of seconds > 0")
  message(FATAL_ERROR "kiln tune --budget 0: wrong message:\n${bad}")
endif()
kiln_run(2 bad tune --set train.epochs=1)
if(NOT bad MATCHES "--set needs --config")
  message(FATAL_ERROR "kiln tune --set without --config: wrong message:\n${bad}")
endif()
kiln_run(2 bad tune --config "${WORK}/missing.yaml")
if(NOT bad MATCHES "missing.yaml")
  message(FATAL_ERROR "kiln tune with a missing config: wrong message:\n${bad}")
endif()
message(STATUS "kiln tune: tuned, shown, trained with the results, corrupt file ignored")
