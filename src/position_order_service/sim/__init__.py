"""Exchange simulator: a pure engine (`sim.engine`) and wire fronts serving it as OKX v5 and Binance USD-M."""
