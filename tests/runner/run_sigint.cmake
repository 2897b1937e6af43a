# SIGINT during `kiln train`: starts tiny.yaml with a million epochs in the background, sends
# SIGINT once log.jsonl holds the first epoch, and checks that the run ends with exit status 0,
# "stopped: interrupted" and the test line, with last.safetensors in the run directory; and,
# since tiny.yaml's early stopping restores the best weights however training ends, that the
# final test line equals `kiln test` on the best checkpoint (save_best_only on the same monitor),
# also when the interrupted epoch followed the best one.
# -DKILN=path -DCONFIG=path -DRUN_DIR=path
include("${CMAKE_CURRENT_LIST_DIR}/test_device.cmake")
file(REMOVE_RECURSE "${RUN_DIR}")
file(MAKE_DIRECTORY "${RUN_DIR}")
set(script [=[
"$KILN" train "$CONFIG" --device "$DEVICE" --run-dir "$RUN_DIR" --set train.epochs=1000000 \
  --set train.callbacks.early_stopping.patience=1000000 \
  --set "train.callbacks.checkpoint={path: $RUN_DIR/best.safetensors, monitor: val_loss, save_best_only: true}" \
  >"$RUN_DIR/out.txt" 2>&1 &
pid=$!
i=0
until grep -q '"epoch": 1' "$RUN_DIR/log.jsonl" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 1200 ] || ! kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    echo "no first epoch in log.jsonl after 120 s"
    exit 3
  fi
  sleep 0.1
done
kill -INT "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; do
  i=$((i + 1))
  if [ "$i" -gt 600 ]; then
    kill -KILL "$pid"
    echo "still running 60 s after SIGINT"
    exit 4
  fi
  sleep 0.1
done
wait "$pid"
]=])
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "KILN=${KILN}" "CONFIG=${CONFIG}"
                        "RUN_DIR=${RUN_DIR}" "DEVICE=${KILN_TEST_DEVICE}" sh -c "${script}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ "${RUN_DIR}/out.txt" log)
set(all "${out}${err}${log}")
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "kiln train after SIGINT: exit status ${rc}, expected 0\n${all}")
endif()
foreach(re "done: [0-9]+ epoch\\(s\\), stopped: interrupted" "test: loss [0-9.e+-]+ accuracy")
  if(NOT log MATCHES "${re}")
    message(FATAL_ERROR "kiln train after SIGINT: output does not match '${re}':\n${all}")
  endif()
endforeach()
if(NOT EXISTS "${RUN_DIR}/last.safetensors")
  message(FATAL_ERROR "kiln train after SIGINT: ${RUN_DIR}/last.safetensors was not written")
endif()
execute_process(COMMAND "${KILN}" test "${CONFIG}" --device "${KILN_TEST_DEVICE}" --checkpoint "${RUN_DIR}/best.safetensors"
                RESULT_VARIABLE rc OUTPUT_VARIABLE best_out ERROR_VARIABLE best_err)
string(REGEX MATCH "test: [^\n]*" trained "${log}")
string(REGEX MATCH "test: [^\n]*" best "${best_out}")
if(NOT rc STREQUAL "0" OR NOT trained STREQUAL best)
  message(FATAL_ERROR "kiln train after SIGINT did not end with the best weights:\n"
                      "train: ${trained}\nbest checkpoint: ${best}\n${all}${best_out}${best_err}")
endif()
message(STATUS "kiln train: SIGINT ended the run with exit 0, interrupted, last.safetensors, "
               "the best weights")
