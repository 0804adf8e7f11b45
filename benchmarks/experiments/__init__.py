"""One-off experiments: each answered one question, and its module docstring opens
with what was asked, what it found and what it changed. Run one from the repository
root as ``python -m benchmarks.experiments.<name>``."""
