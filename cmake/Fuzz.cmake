# -DFUZZ=ON: libFuzzer + ASan + UBSan instrumentation for everything built in
# this tree (clang only, so use a separate build tree, e.g. build-fuzz:
#   CC=clang cmake -S . -B build-fuzz -DFUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
# ). Only the components the harnesses need are configured.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "FUZZ=ON needs clang (libFuzzer): CC=clang cmake -S . -B build-fuzz -DFUZZ=ON")
endif()
set(_fuzz -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer -gline-tables-only)
add_compile_options(${_fuzz})
add_link_options(-fsanitize=address,undefined)
add_compile_definitions(SKY_FUZZING=1)
# The warning set is tuned for gcc (the real builds): here warnings do not fail.
add_compile_options(-Wno-unknown-warning-option)
set(SKY_WERROR OFF CACHE BOOL "" FORCE)
