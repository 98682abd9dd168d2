# SANITIZE=address,undefined (or thread): libuv's ASAN/UBSAN/TSAN options
# folded into one cache variable.
if(SANITIZE)
  set(_san -fsanitize=${SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_compile_options(${_san})
  add_link_options(${_san})
  add_compile_definitions(SKY_SANITIZED=1)
endif()
