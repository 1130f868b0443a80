"""Scrapy spiders and the continuous crawl scheduler that fill the catalog DB (issue #3)."""
