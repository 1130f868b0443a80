"""The gateway's routes, one module per part of the API: the storefront and status pages
(:mod:`.page`), the recommendation API (:mod:`.recommend`: ``/recommend``, ``/feedback``,
``/metrics``), ops and catalog reads (:mod:`.ops`) and ``/admin`` (:mod:`.admin`). The app
(:mod:`services.gateway.app`) includes :data:`ROUTERS` in this order."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.routes import admin, ops, page, recommend

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (page.router, ops.router, recommend.router, admin.router)
"""Pages first: ``/`` is the shop."""
