"""Side-by-side benchmarks of the service (`python -m benchmarks`, `make bench`); results in docs/benchmarks.md.

All load is generated against 127.0.0.1 only, with bounded request counts.
"""
