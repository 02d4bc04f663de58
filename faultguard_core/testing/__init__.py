"""Test helpers for faultguard and its plugins: a pytest plugin and contract suites."""
