"""The lab: training, evaluation, probes and benchmarks. It imports the services and shared;
nothing in them imports it, and service images do not ship it (docs/architecture.md)."""
