"""Pure rendering: a ModelFleet in, Kubernetes object dicts out (no I/O, no Kubernetes client)."""
