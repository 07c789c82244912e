"""The room agent that runs on the gateway (Raspberry Pi)."""
