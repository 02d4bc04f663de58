"""Fallback stores: the contract and the built-in memory and SQLite backends."""
