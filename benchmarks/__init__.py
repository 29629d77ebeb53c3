"""Benchmarks: synthgen backends side by side with SDV on the same machine.

Performance claims live here, never in unit tests: ``python -m benchmarks.run`` fits each
chosen backend on each chosen dataset with the same epochs and batch size, in a fresh
subprocess per backend, and writes a Markdown + JSON table (timings, sampling speed,
peak memory, SDMetrics quality and, optionally, TSTR/TRTR utility). See
``benchmarks/README.md`` and ``docs/benchmarks.md``.
"""
