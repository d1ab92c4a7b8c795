"""The API: pydantic models of the ModelFleet resource and of the routing table (single source of truth)."""
