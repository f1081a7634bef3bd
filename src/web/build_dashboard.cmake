# Run by the build (src/web/CMakeLists.txt): installs web/'s npm packages when package-lock.json
# changed (npm ci, under a lock so that two build trees never install at once), then runs
# web/build.mjs, which type-checks, bundles and writes web_assets.cpp into OUT.
# Inputs: NODE, NPM, WEB_DIR, OUT.
file(LOCK "${WEB_DIR}/.npm-ci.lock" GUARD PROCESS TIMEOUT 900 RESULT_VARIABLE lock_result)
if(NOT lock_result EQUAL 0)
  message(FATAL_ERROR "web: could not lock ${WEB_DIR}/.npm-ci.lock: ${lock_result}")
endif()
set(installed "${WEB_DIR}/node_modules/.package-lock.json")
if(NOT EXISTS "${installed}" OR "${WEB_DIR}/package-lock.json" IS_NEWER_THAN "${installed}")
  message(STATUS "web: npm ci (package-lock.json changed or node_modules missing)")
  execute_process(
    COMMAND "${NPM}" ci --no-audit --no-fund --loglevel=error
    WORKING_DIRECTORY "${WEB_DIR}"
    RESULT_VARIABLE npm_result)
  if(NOT npm_result EQUAL 0)
    message(FATAL_ERROR
      "web: 'npm ci' in ${WEB_DIR} failed (${npm_result}). The dashboard needs its npm packages "
      "(web/package-lock.json) from the npm registry or the npm cache; the binary is not built "
      "without its dashboard.")
  endif()
endif()
execute_process(
  COMMAND "${NODE}" "${WEB_DIR}/build.mjs" --out "${OUT}"
  WORKING_DIRECTORY "${WEB_DIR}"
  RESULT_VARIABLE build_result)
if(NOT build_result EQUAL 0)
  message(FATAL_ERROR "web: building the dashboard failed (${build_result}); see above")
endif()
