# Shared by the `kiln train` test scripts: kiln_train(OUT_VAR ARGS...) runs
# `kiln train CONFIG --device DEVICE ARGS...` (DEVICE as test_device.cmake sets it), fails the
# test on a non-zero exit status, and sets OUT_VAR to stdout followed by stderr, OUT_VAR_stdout
# and OUT_VAR_stderr to each alone.
# Needs KILN and CONFIG.
include("${CMAKE_CURRENT_LIST_DIR}/test_device.cmake")

function(kiln_train out_var)
  execute_process(COMMAND "${KILN}" train "${CONFIG}" --device "${KILN_TEST_DEVICE}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "kiln train ${ARGN}: exit status ${rc}, expected 0\n${out}${err}")
  endif()
  set(${out_var} "${out}${err}" PARENT_SCOPE)
  set(${out_var}_stdout "${out}" PARENT_SCOPE)
  set(${out_var}_stderr "${err}" PARENT_SCOPE)
endfunction()
