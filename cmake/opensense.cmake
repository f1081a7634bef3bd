# opensense_module(NAME SOURCES ... DEPS ... PRIVATE_DEPS ...)
# One static library per module, aliased opensense::NAME; warnings are errors for our code.
function(opensense_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers
    $<$<CXX_COMPILER_ID:GNU>:-Wno-error=restrict>)  # GCC 12 false positive at -O3 (bug 105651)
endfunction()

function(opensense_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(opensense_${name} STATIC ${M_SOURCES})
  add_library(opensense::${name} ALIAS opensense_${name})
  target_include_directories(opensense_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(opensense_${name} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  opensense_warnings(opensense_${name})
endfunction()

# opensense_test(NAME SOURCES ... DEPS ...): one gtest binary per module, registered with CTest.
function(opensense_test name)
  cmake_parse_arguments(T "" "" "SOURCES;DEPS;PROPERTIES" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  opensense_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${T_PROPERTIES})
endfunction()
