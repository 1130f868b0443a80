"""Lookalike's services; each starts with ``python -m services.<name>``."""
