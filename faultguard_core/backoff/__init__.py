"""Backoff strategies: how long to wait before each retry."""
