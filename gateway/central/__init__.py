"""Central services (ingest, alerts, display); they import the contract, never copy it."""
