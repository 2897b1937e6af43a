# Runs tools/gen_tabular.c's program into a fresh directory and checks that it writes the four
# files of models/data/ byte for byte (the generator uses integer arithmetic only, so this holds
# on every machine; a change to the generator must come with regenerated files).
# -DGEN=path -DOUT_DIR=path -DDATA_DIR=path
file(REMOVE_RECURSE "${OUT_DIR}")
file(MAKE_DIRECTORY "${OUT_DIR}")
execute_process(COMMAND "${GEN}" "${OUT_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "gen_tabular: exit status ${rc}: ${err}")
endif()
file(GLOB written RELATIVE "${OUT_DIR}" "${OUT_DIR}/*")
list(SORT written)
set(expected tabular_classification_test.csv tabular_classification_train.csv
             tabular_regression_test.csv tabular_regression_train.csv)
if(NOT written STREQUAL expected)
  message(FATAL_ERROR "gen_tabular wrote '${written}', expected '${expected}'")
endif()
foreach(name IN LISTS expected)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${OUT_DIR}/${name}"
                          "${DATA_DIR}/${name}" RESULT_VARIABLE differ)
  if(NOT differ EQUAL 0)
    message(FATAL_ERROR "gen_tabular: ${name} differs from ${DATA_DIR}/${name}; regenerate "
                        "with `build/tools/gen_tabular models/data` if the change is intended")
  endif()
endforeach()
message(STATUS "gen_tabular: the 4 files equal models/data/")
