"""Only the optional C extension lives here; everything else about the package is in pyproject.toml.

optional=True: without a C compiler the install still succeeds and ps.optim falls back to numpy.
-fno-math-errno: sqrtf may then skip setting errno, which is what lets gcc vectorize the RMSProp loop.
-fopenmp-simd: honours `#pragma omp simd` (no OpenMP runtime), so the sum-of-squares reduction vectorizes.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("ps._kernels", ["ps/_kernels.c"], extra_compile_args=["-O3", "-fno-math-errno", "-fopenmp-simd"],
                             optional=True)])
