"""The data plane: an OpenAI-compatible router that picks a fleet model per task and falls back to the cloud.

Modules, request path order: ``app`` (ASGI wiring) → ``requesting`` (validate the body) → ``routing``
(task and candidate chain; calls ``classifying``) → ``handling`` (try candidates, fall back) → ``upstreams``
(pods, least-outstanding pick, ``breaking`` circuit breakers; ``discovering`` EndpointSlices) →
``forwarding`` (HTTP to the model server or provider; ``anthropic`` translation, ``streams`` SSE usage) →
``pricing`` and ``metrics``. ``runtimes`` builds one immutable snapshot per config; ``reloading`` swaps it.
``classifierfetching`` fetches and checks a fleet's own classifier head (the operator vets it with it too).
"""
