# flowad_link_dependencies(<target>): what a static <target> needs at link time, read from the libraries
# it links, so that the package config and flowad.pc follow src/CMakeLists.txt. Sets, in the caller:
#   FLOWAD_STATIC               ON for a static library
#   FLOWAD_LINKS_ZLIB           ON if it links ZLIB::ZLIB (flowadConfig.cmake then finds ZLIB)
#   FLOWAD_LINKS_JPEG           ON if it links JPEG::JPEG (flowadConfig.cmake then finds JPEG)
#   FLOWAD_PC_REQUIRES_PRIVATE  pkg-config modules, for Requires.private
#   FLOWAD_PC_LIBS_PRIVATE      linker flags of libraries without a .pc, for Libs.private
# A library linked with no mapping here is reported: add its pkg-config form below.
function(flowad_link_dependencies target)
  get_target_property(type ${target} TYPE)
  get_target_property(libraries ${target} LINK_LIBRARIES)
  set(requires "")
  set(flags "")
  set(zlib OFF)
  set(jpeg OFF)
  set(threads OFF)
  foreach(library IN LISTS libraries)
    if(library MATCHES "^\\$<BUILD_INTERFACE:")
      # Build-only: warning flags, header-only Eigen.
    elseif(library STREQUAL "DNNL::dnnl")
      # Debian's oneDNN has no .pc; name its folder unless the linker searches it anyway.
      get_target_property(location DNNL::dnnl LOCATION)
      get_filename_component(folder "${location}" DIRECTORY)
      if(NOT folder IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
        list(APPEND flags "-L${folder}")
      endif()
      list(APPEND flags -ldnnl)
    elseif(library STREQUAL "OpenMP::OpenMP_CXX")
      foreach(name IN LISTS OpenMP_CXX_LIB_NAMES)  # gomp, pthread with GCC
        list(APPEND flags "-l${name}")
      endforeach()
    elseif(library STREQUAL "Threads::Threads")
      set(threads ON)  # last: the others may need it
    elseif(library STREQUAL "PkgConfig::STB")
      list(APPEND requires stb)
    elseif(library STREQUAL "ZLIB::ZLIB")
      list(APPEND requires zlib)
      set(zlib ON)
    elseif(library STREQUAL "JPEG::JPEG")
      list(APPEND requires libjpeg)
      set(jpeg ON)
    else()
      message(WARNING "flowad links ${library}, which cmake/flowadLinkDependencies.cmake does not map to "
                      "pkg-config and package-config terms: a static libflowad's flowad.pc and flowadConfig.cmake "
                      "will miss it")
    endif()
  endforeach()
  if(threads)
    list(APPEND flags -lpthread)
  endif()
  list(REMOVE_DUPLICATES flags)
  string(REPLACE ";" " " flags "${flags}")
  string(REPLACE ";" ", " requires "${requires}")
  if(type STREQUAL "STATIC_LIBRARY")
    set(FLOWAD_STATIC ON PARENT_SCOPE)
  else()
    set(FLOWAD_STATIC OFF PARENT_SCOPE)
  endif()
  set(FLOWAD_LINKS_ZLIB ${zlib} PARENT_SCOPE)
  set(FLOWAD_LINKS_JPEG ${jpeg} PARENT_SCOPE)
  set(FLOWAD_PC_REQUIRES_PRIVATE "${requires}" PARENT_SCOPE)
  set(FLOWAD_PC_LIBS_PRIVATE "${flags}" PARENT_SCOPE)
endfunction()
