"""position-order-service: real-time position and order management for crypto trading bots."""

__version__ = "0.1.0"
