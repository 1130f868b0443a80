"""The ingest worker: Celery tasks that download catalog images, crop (and optionally detect)
their garments, embed the crops and upsert them into the vector index, plus the sweeper that
keeps the queue honest. Compose runs it as ``ingest-worker`` (``lookalike worker``) and
``ingest-sweeper`` (``lookalike sweep``); the embedded stack runs it in process
(:class:`~services.ingest.tasks.InProcessWorker`).

- :mod:`~services.ingest.pipeline`: one chunk of images, end to end;
- :mod:`~services.ingest.tasks`: the Celery tasks and the in-process consumer;
- :mod:`~services.ingest.indexing`: the catalog's points in the index (write side);
- :mod:`~services.ingest.sweeper`: recovery and reconciliation;
- :mod:`~services.ingest.cli`: ``lookalike worker|sweep|reindex|ingest-status``.
"""
