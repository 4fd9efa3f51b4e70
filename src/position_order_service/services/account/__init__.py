"""Account actors: one per (user, exchange), the single writer of the account's orders, positions and fills."""

from .actor import AccountActor, AccountOptions
from .ports import AccountRecorder, Accounts, AccountView
from .registry import AccountRegistry

__all__ = ["AccountActor", "AccountOptions", "AccountRecorder", "AccountRegistry", "AccountView", "Accounts"]
