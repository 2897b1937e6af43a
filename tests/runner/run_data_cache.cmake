# `kiln train`'s prepared-data cache (data.cache), with a cache directory of its own: the first
# run prepares the data, caches one <key>.kdata file and says `written` in summary.json; the
# second says `read`, prints the same data messages (duplicates removed, leakage) and trains
# to the same epoch lines, test line and log.jsonl (seconds aside). `kiln cache info` counts
# the file and `clear` removes it. Editing the data file (a new modification time) makes a new
# key; a damaged cache file is reported, replaced and gives the same results; `data.cache:
# false` and KILN_NO_CACHE=1 write nothing.
# -DKILN=path -DCONFIG=tiny.yaml -DWORK=dir
include("${CMAKE_CURRENT_LIST_DIR}/train_helpers.cmake")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(ENV{KILN_CACHE_DIR} "${WORK}/cache")
# The config and its data in WORK, so the test may touch the data file.
get_filename_component(source_dir "${CONFIG}" DIRECTORY)
file(COPY "${CONFIG}" "${source_dir}/tiny.csv" DESTINATION "${WORK}")
get_filename_component(config_name "${CONFIG}" NAME)
set(CONFIG "${WORK}/${config_name}")

# Runs tiny.yaml into run directory NAME; sets NAME_out (stdout and stderr), NAME_lines (the
# data messages, epoch and test lines without timings, the cache's warnings left out), NAME_log (log.jsonl without seconds)
# and NAME_cache (summary.json's data_cache).
function(run name)
  kiln_train(out --run-dir "${WORK}/${name}" --set data.remove_duplicates=true ${ARGN})
  string(REPLACE ";" "," text "${out}") # a CMake list separator
  string(REGEX MATCHALL "kiln: [^\n]*|epoch [0-9]+/[^\n]*|test:[^\n]*" lines "${text}")
  string(REGEX REPLACE "  [0-9.]+ s" "" lines "${lines}")
  list(FILTER lines EXCLUDE REGEX "warning: data\\.cache") # the cache's own, checked below
  file(STRINGS "${WORK}/${name}/log.jsonl" log)
  string(REGEX REPLACE ", \"seconds\": [0-9.]+" "" log "${log}")
  file(READ "${WORK}/${name}/summary.json" summary)
  if(NOT summary MATCHES "\"data_cache\": \"([a-z ]+)\"")
    message(FATAL_ERROR "${name}: summary.json has no data_cache:\n${summary}")
  endif()
  set(${name}_out "${out}" PARENT_SCOPE)
  set(${name}_lines "${lines}" PARENT_SCOPE)
  set(${name}_log "${log}" PARENT_SCOPE)
  set(${name}_cache "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

function(expect_files n)
  file(GLOB files "${WORK}/cache/*.kdata")
  list(LENGTH files got)
  if(NOT got EQUAL n)
    message(FATAL_ERROR "expected ${n} prepared-data file(s) in ${WORK}/cache, found ${got}: "
                        "${files}")
  endif()
endfunction()

function(expect_same name)
  if(NOT first_lines STREQUAL ${name}_lines OR NOT first_log STREQUAL ${name}_log)
    message(FATAL_ERROR "${name}: differs from the first run\nfirst: ${first_lines}\n"
                        "${name}: ${${name}_lines}\nfirst log: ${first_log}\n"
                        "${name} log: ${${name}_log}")
  endif()
endfunction()

run(first)
expect_files(1)
if(NOT first_cache STREQUAL "written")
  message(FATAL_ERROR "first run: data_cache is '${first_cache}', expected 'written'")
endif()
if(NOT first_out MATCHES "removed 0 duplicate sample" OR
   NOT first_out MATCHES "also occur in the test split")
  message(FATAL_ERROR "first run: the data messages are missing:\n${first_out}")
endif()

run(second)
expect_files(1)
if(NOT second_cache STREQUAL "read")
  message(FATAL_ERROR "second run: data_cache is '${second_cache}', expected 'read'")
endif()
expect_same(second)

execute_process(COMMAND "${KILN}" cache info OUTPUT_VARIABLE info RESULT_VARIABLE rc)
if(NOT rc STREQUAL "0" OR NOT info MATCHES "prepared data: 1 file\\(s\\)")
  message(FATAL_ERROR "kiln cache info: the prepared data are not counted:\n${info}")
endif()

# A new modification time of the data file: a new key, prepared again, the same results.
file(TOUCH "${WORK}/tiny.csv")
run(touched)
expect_files(2)
if(NOT touched_cache STREQUAL "written")
  message(FATAL_ERROR "after touching the data: data_cache is '${touched_cache}'")
endif()
expect_same(touched)

# Damaged cache files: reported, replaced, and the run's results unchanged.
file(GLOB files "${WORK}/cache/*.kdata")
string(REPEAT "\n" 5000 padding) # past the smallest size a file can have
foreach(f IN LISTS files)
  file(WRITE "${f}" "kiln-prepared-data 1 little\nset 9999999\nend\n${padding}")
endforeach()
run(damaged)
if(NOT damaged_out MATCHES "warning: data.cache: cannot use [^\n]*\\.kdata, preparing the data again: [^\n]*header line 2")
  message(FATAL_ERROR "a damaged cache file was not reported:\n${damaged_out}")
endif()
if(NOT damaged_cache STREQUAL "written")
  message(FATAL_ERROR "after damage: data_cache is '${damaged_cache}', expected 'written'")
endif()
expect_same(damaged)
run(repaired)
if(NOT repaired_cache STREQUAL "read" OR repaired_out MATCHES "warning: data.cache")
  message(FATAL_ERROR "the damaged file was not replaced:\n${repaired_out}")
endif()

execute_process(COMMAND "${KILN}" cache clear OUTPUT_VARIABLE cleared RESULT_VARIABLE rc)
if(NOT rc STREQUAL "0" OR NOT cleared MATCHES "2 prepared data file")
  message(FATAL_ERROR "kiln cache clear: did not remove the prepared data:\n${cleared}")
endif()
expect_files(0)

# Off: nothing written, by the config or by the environment.
run(off --set data.cache=false)
expect_files(0)
if(NOT off_cache STREQUAL "off")
  message(FATAL_ERROR "data.cache: false: data_cache is '${off_cache}', expected 'off'")
endif()
set(ENV{KILN_NO_CACHE} 1)
run(no_cache)
unset(ENV{KILN_NO_CACHE})
expect_files(0)
expect_same(no_cache)
