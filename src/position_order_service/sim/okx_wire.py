"""OKX v5 wire front (REST /api/v5 + WebSocket /ws/v5/*) for the simulator; the code lives in ``sim.okx``."""

from __future__ import annotations

from .okx import install

__all__ = ["install"]
