"""Quality measurements of the whole system: ``lookalike eval-e2e`` (street and product photos
answered by the real pipelines over a labelled shop, scored per garment class)."""
