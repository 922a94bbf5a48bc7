"""Measured claims: each module times our code against a plain baseline on the same data and model.

`python -m benchmarks.run` runs them all and writes benchmarks/RESULTS.md; none asserts a time.
"""
