# LibTorch from the torch wheel in the venv: sets TORCH_LIBRARIES (what a LibTorch module links)
# and TORCH_LIBRARY (libtorch.so, whose folder is audit-torch's install RPATH).
#
# Where nvcc exists, the wheel's own config (find_package(Torch)) does it, CUDA half and all, as
# before. Without a CUDA toolkit that config stops ("Your installed Caffe2 version uses CUDA but
# I cannot find the CUDA libraries"), although none of our C++ needs a CUDA header or the CUDA
# targets to compile (the CUDA kernels are built only with nvcc). So without nvcc the target
# `torch` is defined here from the wheel's files: its headers, and libtorch.so, libtorch_cpu.so,
# libc10.so from torch/lib, with the definitions the wheel's torch_cpu target carries. libtorch.so
# is linked even under --as-needed: it loads libtorch_cuda.so and, through its RPATH, the CUDA
# runtime libraries of the nvidia-* wheels, so `--device cuda` still works wherever a GPU and its
# driver are. The torch package is the one that ${Python3_EXECUTABLE} imports (the Makefile
# passes the venv's).
if(NOT DEFINED CMAKE_CUDA_COMPILER)  # AUDIT_CUDA=OFF did not look for nvcc
  include(CheckLanguage)
  check_language(CUDA)
endif()
if(CMAKE_CUDA_COMPILER)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  find_package(Torch REQUIRED)
  return()
endif()

if(NOT Python3_EXECUTABLE)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
endif()
execute_process(
  COMMAND "${Python3_EXECUTABLE}" -c
    "import os, torch; print(os.path.dirname(torch.__file__)); print(torch.__version__); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
  OUTPUT_VARIABLE _torch_out ERROR_VARIABLE _torch_err RESULT_VARIABLE _torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "LibTorch: ${Python3_EXECUTABLE} cannot import torch (run `make deps`, "
                      "or pass -DPython3_EXECUTABLE=<a python with torch>):\n${_torch_err}")
endif()
string(REPLACE "\n" ";" _torch_out "${_torch_out}")
list(GET _torch_out 0 _torch_root)
list(GET _torch_out 1 _torch_version)
list(GET _torch_out 2 _torch_abi)
set(_torch_lib "${_torch_root}/lib")
foreach(_f include/torch/csrc/api/include/torch/torch.h lib/libtorch.so lib/libtorch_cpu.so lib/libc10.so)
  if(NOT EXISTS "${_torch_root}/${_f}")
    message(FATAL_ERROR "LibTorch: ${_torch_root}/${_f} is missing (the torch package has no LibTorch?)")
  endif()
endforeach()

add_library(c10 SHARED IMPORTED)
set_target_properties(c10 PROPERTIES IMPORTED_LOCATION "${_torch_lib}/libc10.so")
add_library(torch_cpu SHARED IMPORTED)
set_target_properties(torch_cpu PROPERTIES
  IMPORTED_LOCATION "${_torch_lib}/libtorch_cpu.so"
  INTERFACE_LINK_LIBRARIES c10)
add_library(torch INTERFACE IMPORTED)
set_target_properties(torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_torch_root}/include;${_torch_root}/include/torch/csrc/api/include"
  INTERFACE_COMPILE_DEFINITIONS
    "USE_DISTRIBUTED;USE_C10D_GLOO;USE_RPC;USE_TENSORPIPE;_GLIBCXX_USE_CXX11_ABI=${_torch_abi}"
  INTERFACE_LINK_LIBRARIES
    "-Wl,--push-state,--no-as-needed,\"${_torch_lib}/libtorch.so\" -Wl,--pop-state;torch_cpu")
set(TORCH_LIBRARY "${_torch_lib}/libtorch.so")
set(TORCH_LIBRARIES torch)
set(TORCH_INCLUDE_DIRS "${_torch_root}/include" "${_torch_root}/include/torch/csrc/api/include")
set(TORCH_FOUND TRUE)
message(STATUS "LibTorch ${_torch_version} from ${_torch_root}, without its CUDA half (no nvcc; "
               "CUDA still works at run time through the wheel's libraries)")
