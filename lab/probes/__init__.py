"""One-question experiments, each run as ``python -m lab.probes.NAME``."""
