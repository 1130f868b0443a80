"""Fine-tuning and evaluating the embedder (``lookalike train``, ``lookalike eval``)."""
