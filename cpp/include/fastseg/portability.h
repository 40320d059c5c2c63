// Compiler portability for the kernels shared by the CPU (g++) and CUDA (nvcc) builds.
#pragma once

// Functions the CPU and the GPU kernels both call.
#ifdef __CUDACC__
#define FASTSEG_HD __host__ __device__
#else
#define FASTSEG_HD
#endif

// Row kernels compiled for AVX-512, AVX2 and baseline x86-64, picked at load time (GCC).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#define FASTSEG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTSEG_CLONES
#endif
