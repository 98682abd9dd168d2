# Debian has no llhttp -dev package; node-llhttp ships the generated C.
set(LLHTTP_SRC_DIR /usr/share/llhttp CACHE PATH "llhttp C sources")
set(LLHTTP_INCLUDE_DIR /usr/share/include/llhttp CACHE PATH "llhttp header")
if(NOT EXISTS ${LLHTTP_SRC_DIR}/llhttp.c OR NOT EXISTS ${LLHTTP_INCLUDE_DIR}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found: apt-get install node-llhttp")
endif()
add_library(llhttp STATIC ${LLHTTP_SRC_DIR}/api.c ${LLHTTP_SRC_DIR}/http.c ${LLHTTP_SRC_DIR}/llhttp.c)
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
# Strict mode: CRLF after chunk data and the like (RFC 9112 7.1), so the
# LB never forwards a framing that a stricter peer reads differently.
target_compile_definitions(llhttp PRIVATE LLHTTP_STRICT_MODE=1)
target_compile_options(llhttp PRIVATE -Wno-unused-parameter -O2)
set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
