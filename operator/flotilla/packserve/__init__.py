"""The `ray` runtime's server: one process serves a pack of llama.cpp models with Ray Serve (issue 13).

Its own room: it imports neither kopf nor the operator nor the router, and nothing outside it imports Ray,
so the router and the operator run without the optional ``ray`` extra installed.
"""
