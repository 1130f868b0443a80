"""Garment detection and cropping, as a library and a FastAPI service (issue #6)."""
