"""Simulated hardware: the real sources and vendor drivers run against these."""
