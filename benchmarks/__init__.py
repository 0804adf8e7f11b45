"""skrank's benchmark suite: run each script from the repository root as
``python -m benchmarks.<name>`` (``benchmarks/README.md`` lists them, and
``benchmarks/results/README.md`` indexes the numbers the docs cite)."""
