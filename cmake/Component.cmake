# sky_component(<lib> <glob> <program>): the component's sources matching
# <glob> (everything but main.c) become the static library <lib>, so unit
# tests link the real code; main.c, once present, becomes <program>.
function(sky_component lib glob program)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${glob})
  if(NOT srcs)
    return()
  endif()
  add_library(${lib} STATIC ${srcs})
  target_include_directories(${lib} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${lib} PUBLIC skycore)
  sky_warnings(${lib})
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/main.c)
    add_executable(${program} main.c)
    target_link_libraries(${program} PRIVATE ${lib})
    sky_warnings(${program})
  endif()
endfunction()
