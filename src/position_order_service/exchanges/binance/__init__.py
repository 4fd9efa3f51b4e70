"""Binance USD-M futures: ``gateway`` (BinanceGateway), ``client`` (ccxt.pro client with the push tap,
markets), ``parse`` (payloads -> domain), ``push`` (our parsing of user-stream and market pushes), ``params``
(what orders are sent with).

The package's pure modules (``parse``, ``params``) do not import ccxt; import the gateway from ``.gateway``."""
