#!/usr/bin/env bash
# Installs what bench/router/run.py needs besides the project venv (idempotent; ~3-6 min cold):
#   wrk (Debian), LiteLLM proxy and vllm-router each in its own venv under
#   ~/.cache/flotilla/bench-venvs so neither pollutes the project venv, and py-spy (tools venv) for profiling.
set -euo pipefail
VENVS="${HOME}/.cache/flotilla/bench-venvs"
PY="${PYTHON:-python3.11}"
mkdir -p "$VENVS"
command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
if [ ! -x "$VENVS/litellm/bin/litellm" ]; then
  "$PY" -m venv "$VENVS/litellm"
  "$VENVS/litellm/bin/pip" install -q 'litellm[proxy]'
fi
if [ ! -x "$VENVS/vllm-router/bin/vllm-router" ]; then
  "$PY" -m venv "$VENVS/vllm-router"
  "$VENVS/vllm-router/bin/pip" install -q vllm-router
fi
if [ ! -x "$VENVS/tools/bin/py-spy" ]; then  # optional: profiling (README "Profiling the router")
  "$PY" -m venv "$VENVS/tools"
  "$VENVS/tools/bin/pip" install -q py-spy
fi
echo "wrk: $(wrk -v 2>&1 | head -1)"
echo "litellm: $("$VENVS/litellm/bin/pip" show litellm 2>/dev/null | sed -n 's/^Version: //p')"
echo "vllm-router: $("$VENVS/vllm-router/bin/pip" show vllm-router 2>/dev/null | sed -n 's/^Version: //p')"
