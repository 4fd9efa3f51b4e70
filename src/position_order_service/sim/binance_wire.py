"""Binance USD-M wire front of the simulator: ``install(app, ctx)`` (implementation in ``sim.binance``)."""

from .binance import FRONT_KEY, install

__all__ = ["FRONT_KEY", "install"]
