"""OKX (USDT swaps): ``gateway`` (OkxGateway), ``client`` (ccxt.pro client with the push tap, markets),
``parse`` (payloads -> domain), ``push`` (our parsing of pushes), ``params`` (what orders are sent with).

The package's pure modules (``parse``, ``params``) do not import ccxt; import the gateway from ``.gateway``."""
