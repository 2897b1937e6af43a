# Trains one of the tabular model configs (models/tabular_*.yaml) end to end and checks:
# - the quality bar on the test file: test METRIC compared (LESS or GREATER_EQUAL) with BAR,
#   which the test's add_test comment in tests/CMakeLists.txt derives;
# - duplicate removal happened: "removed N duplicate sample(s)" with 1 <= N <= DUPLICATES,
#   the number of repeated rows tools/gen_tabular.c wrote (the rest fall into validation);
# - imputation happened: the missing values reported for the train and validation splits add
#   up to the missing cells (empty, NA, NaN) counted here in TRAIN_CSV (gen_tabular repeats
#   only complete rows, so duplicate removal drops none), none are left after preprocessing
#   and no sample was dropped for them: they were imputed.
# -DKILN=path -DCONFIG=path -DRUN_DIR=path -DTRAIN_CSV=path -DMETRIC=name -DCOMPARE=op -DBAR=x
# -DDUPLICATES=n
file(REMOVE_RECURSE "${RUN_DIR}")
include("${CMAKE_CURRENT_LIST_DIR}/train_helpers.cmake")
kiln_train(all --run-dir "${RUN_DIR}")
set(out "${all_stdout}")
set(err "${all_stderr}")

if(NOT out MATCHES "test: loss [0-9.e+-]+[^\n]* ${METRIC} ([0-9.e+-]+)")
  message(FATAL_ERROR "kiln train: no test ${METRIC} on stdout:\n${all}")
endif()
set(value "${CMAKE_MATCH_1}")
if(NOT value ${COMPARE} ${BAR})
  message(FATAL_ERROR "kiln train: test ${METRIC} ${value} is not ${COMPARE} ${BAR}:\n${all}")
endif()

if(NOT err MATCHES "removed ([0-9]+) duplicate sample\\(s\\) of [0-9]+ from the training split")
  message(FATAL_ERROR "kiln train: no duplicate-removal line on stderr:\n${all}")
endif()
set(removed "${CMAKE_MATCH_1}")
if(removed LESS 1 OR removed GREATER DUPLICATES)
  message(FATAL_ERROR "kiln train: removed ${removed} duplicates, expected 1 to ${DUPLICATES}")
endif()

file(STRINGS "${TRAIN_CSV}" lines)
set(cells 0)
foreach(line IN LISTS lines)
  set(line ",${line},")
  if(line MATCHES ",," OR line MATCHES ",NA," OR line MATCHES ",NaN,")
    math(EXPR cells "${cells} + 1") # gen_tabular leaves at most one cell of a row empty
  endif()
endforeach()
set(reported 0)
foreach(split train validation)
  set(re "${split} split: ([0-9]+) missing value\\(s\\) before data.preprocess, 0 after; ")
  if(NOT err MATCHES "${re}0 sample\\(s\\) dropped")
    message(FATAL_ERROR "kiln train: no line with the ${split} split's missing values imputed "
                        "(0 left, 0 dropped):\n${all}")
  endif()
  math(EXPR reported "${reported} + ${CMAKE_MATCH_1}")
endforeach()
if(cells EQUAL 0 OR NOT reported EQUAL cells)
  message(FATAL_ERROR "kiln train: ${reported} missing values reported, ${TRAIN_CSV} has ${cells}")
endif()
message(STATUS "kiln train: test ${METRIC} ${value} (${COMPARE} ${BAR}), ${removed} duplicates "
               "removed, ${cells} missing values imputed")
