"""The compile machinery, in one home (docs/design.rst, "Compile machinery").

- :mod:`rankseg._compile.jit`: the JIT options, lazy kernels, the first-use notice;
- :mod:`rankseg._compile.aot`: the lookup of the kernels compiled ahead of time;
- :mod:`rankseg._compile.numba_internals`: every non-public numba attribute in use;
- :mod:`rankseg._compile.build`: the ahead-of-time build (``RANKSEG_AOT=1``).
"""
