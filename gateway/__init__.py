"""learnroom: edge IoT for public learning rooms.

The package is split by where code runs: ``gateway.agent`` on the room's Raspberry Pi,
the central services beside it; ``gateway.models`` and ``gateway.topics`` are the contract
(../shared/DESIGN.md) that both sides import.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
