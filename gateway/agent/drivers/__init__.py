"""Sensor drivers: thin wrappers over the vendors' packages, fed an injected bus.

Raw hardware access (``/dev/i2c-*`` through smbus2 or Sensirion's Linux transceiver) lives
only in ``gateway.agent.drivers.i2c`` and is imported when a real bus is opened.
"""
