"""Seeded random generators: every drawn value of the demo shop comes from one of these."""

from __future__ import annotations

import random


def seeded_rng(*parts: object) -> random.Random:
    """A generator seeded by ``parts`` (joined as text), independent of the global one.

    String seeds are hashed with SHA-512 by ``random``, so nearby seeds give unrelated streams.
    """
    return random.Random(":".join(str(part) for part in parts))  # noqa: S311 - test data, not secrets
