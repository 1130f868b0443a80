"""Backbones, fine-tuning, classifier and embeddings; Celery ingest workers (issues #4, #5)."""
