"""Flotilla: a Kubernetes operator and router for fleets of small language models, with cloud fallbacks."""

__version__ = "0.1.0"
__all__ = ["__version__"]
