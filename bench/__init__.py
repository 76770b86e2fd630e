"""Tollgate's benchmark suite: ``python -m bench.run [--quick]`` (see bench/README.md).

Not a test package: pytest only collects ``tests/``, and nothing here is named ``test_*``.
"""
