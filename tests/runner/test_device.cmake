# The device spec that the `kiln` test runs name with --device: $KILN_TEST_DEVICE, as the C
# tests read it (tests/support/kiln_test.h), else "pocl". Sets KILN_TEST_DEVICE.
if(DEFINED ENV{KILN_TEST_DEVICE} AND NOT "$ENV{KILN_TEST_DEVICE}" STREQUAL "")
  set(KILN_TEST_DEVICE "$ENV{KILN_TEST_DEVICE}")
else()
  set(KILN_TEST_DEVICE pocl)
endif()
