"""Transports: how faultguard sends upstream requests."""
