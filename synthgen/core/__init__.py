"""The dependency-free core of synthgen: errors, column kinds and shared value helpers.

Everything here imports nothing from the rest of synthgen (only the standard library,
numpy, pandas and torch), so the bottom layer of the project (``privacy``) can use it
without loading the generators, and any module of synthgen can use it without a cycle.
``tests/test_imports.py`` enforces both rules.

The submodules are imported on demand: ``synthgen.core.errors`` and
``synthgen.core.kinds`` load no third-party package, ``values`` needs numpy/pandas and
``noise`` needs torch.
"""
