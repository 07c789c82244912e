"""Launchers of real services (Mosquitto, influxd, VictoriaMetrics, Alertmanager) as child
processes on free loopback ports, for the tests, the demo and the benchmarks.

Nothing that runs in a room or in a central service imports this package: it sits above
them, beside ``gateway.demo``.
"""
