"""Pieces of the ccxt gateway: wire-payload parsers per venue (`okx`, `binance`), shared conversion helpers
(`common`) and the stream pump (`streams`).

The parsers read the exchange's raw payloads (ccxt's ``info`` field), never ccxt's float-typed unified fields,
so prices, sizes and fees stay exact Decimals. None of these modules imports ccxt itself.
"""
