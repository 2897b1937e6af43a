# Runs the kiln binary with ARGS (a ;-list) and checks its exit status and combined output.
# -DKILN=path -DEXPECT_RC=n -DEXPECT_REGEX=re -DARGS=a;b;c (an argument "@DEVICE@" is replaced
# by the test device: test_device.cmake)
include("${CMAKE_CURRENT_LIST_DIR}/test_device.cmake")
list(TRANSFORM ARGS REPLACE "^@DEVICE@$" "${KILN_TEST_DEVICE}")
execute_process(COMMAND "${KILN}" ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
set(all "${out}${err}")
string(REPLACE "\n" " " flat "${all}")
if(NOT rc STREQUAL EXPECT_RC)
  message(FATAL_ERROR "kiln ${ARGS}: exit status ${rc}, expected ${EXPECT_RC}\n${all}")
endif()
if(NOT flat MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "kiln ${ARGS}: output does not match '${EXPECT_REGEX}':\n${all}")
endif()
message(STATUS "kiln ${ARGS}: exit ${rc}, output matches")
