"""``/healthz``: answers without credentials (a container health check has none)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict:
    """Tells nothing but that the process serves."""
    return {"ok": True}
