# Project code builds with -Werror; third-party sources (llhttp) opt out.
set(SKY_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wshadow -Wformat=2
    -Wstrict-prototypes -Wmissing-prototypes -Wno-format-truncation -Werror=implicit-function-declaration)
function(sky_warnings target)
  target_compile_options(${target} PRIVATE ${SKY_WARNINGS} $<$<BOOL:${SKY_WERROR}>:-Werror>)
endfunction()
option(SKY_WERROR "Treat warnings as errors" ON)
