"""Scoring a candidate model's answer against the answer actually served (shadow evaluation).

Pure functions, no I/O: ``finals`` extracts the final answer of a text (math), ``judging`` builds the prompt
an LLM judge gets and reads its verdict, ``agreeing`` turns two answers into an outcome. The router's
mirroring (``flotilla.router.shadowing``) calls them; nothing here knows about HTTP or Kubernetes.
"""
