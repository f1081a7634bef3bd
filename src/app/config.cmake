# The configuration loader of the app module (settings table, loader, docs/configuration.md),
# a library of its own so that it is tested alone. Included from src/app/CMakeLists.txt.
opensense_module(config
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/config.cpp ${CMAKE_CURRENT_LIST_DIR}/secrets_file.cpp
  DEPS opensense::core
  PRIVATE_DEPS tomlplusplus::tomlplusplus)

if(OPENSENSE_BUILD_TESTS)
  opensense_test(config_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp ${CMAKE_CURRENT_LIST_DIR}/secrets_file_test.cpp
    DEPS opensense::config)
  # The test compares docs/configuration.md with ConfigurationMarkdown().
  target_compile_definitions(config_test PRIVATE OPENSENSE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
