# Fails when `cflow_checks --list` and the FLOW_CHECKS list in CMakeLists.txt differ.
execute_process(COMMAND ${EXE} --list OUTPUT_VARIABLE out RESULT_VARIABLE rc)
string(REPLACE "\n" ";" listed "${out}")
list(REMOVE_ITEM listed "")
if(NOT rc EQUAL 0 OR NOT "${listed}" STREQUAL "${EXPECTED}")
  message(FATAL_ERROR "checks.c lists '${listed}', CMakeLists.txt expects '${EXPECTED}'")
endif()
