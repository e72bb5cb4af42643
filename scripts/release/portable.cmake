# Included by llama.cpp's CMake build (CMAKE_PROJECT_INCLUDE) for the release build of exitwise
# (scripts/release/dist.sh): llama.cpp and ggml as shared libraries, and ggml's back ends as
# libraries loaded at start rather than linked. llama-cpp-sys-2 forwards only CMAKE_* variables
# to CMake, hence this file. The CPU back ends the release ships (one per x86-64 level) are
# built by dist.sh from the same source; the one this build makes is not shipped.
set(GGML_BACKEND_DL ON CACHE BOOL "exitwise release: back ends as loadable libraries" FORCE)
set(GGML_NATIVE OFF CACHE BOOL "exitwise release: no -march=native" FORCE)
