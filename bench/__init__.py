"""Benchmarks of the lab's mesh layer against nuropb 0.1.8: ``python -m bench``."""
