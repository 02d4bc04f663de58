"""Metric exporters: where faultguard's measurements go."""
