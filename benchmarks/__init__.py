"""On-demand benchmarks: dsdb against plain-driver baselines. Run `python -m benchmarks.run`."""
