"""Only the optional C extension lives here; everything else about the package is in pyproject.toml.

optional=True: without a C compiler the install still succeeds; ps.core.optim then falls back to numpy, and
ps.service.reply builds its reply in a bytearray (one more copy).
-fno-math-errno: sqrtf may then skip setting errno, which is what lets gcc vectorize the RMSProp loop.
-fopenmp-simd: honours `#pragma omp simd` (no OpenMP runtime), so the sum-of-squares reduction vectorizes.
"""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("ps.core._kernels", ["ps/core/_kernels.c"], extra_compile_args=["-O3", "-fno-math-errno", "-fopenmp-simd"],
              optional=True),
    Extension("ps.service._bytesbuf", ["ps/service/_bytesbuf.c"], extra_compile_args=["-O2"], optional=True),
])
