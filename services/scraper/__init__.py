"""Scrapy spiders and the continuous crawl scheduler that fill the catalog DB (issue #3).

- ``python -m services.scraper``: the scheduler (one crawl process per due source);
- ``lookalike crawl SOURCE`` / ``python -m services.scraper crawl SOURCE``: one crawl now;
- ``lookalike sources add shops.yaml`` / ``lookalike sources list``.

Source configs: :mod:`services.scraper.schemas`; spiders: :mod:`services.scraper.spiders`;
pipelines: :mod:`services.scraper.pipelines`; one crawl: :mod:`services.scraper.service`.
Importing this package imports neither Scrapy nor Twisted.
"""
