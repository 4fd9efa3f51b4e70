"""Binance USD-M futures wire front of the exchange simulator (REST /fapi + WebSocket streams).

The real ``ccxt.pro.binanceusdm`` client trades against it on loopback: signing, error codes, order /
algo-order / position / account JSON and the user-data and market streams follow Binance's formats as
ccxt 4.5.90 reads them (see docs/exchange-wire-notes.md).
"""

from .install import FRONT_KEY, install

__all__ = ["FRONT_KEY", "install"]
