# Flotilla: the two commands a newcomer needs are `make demo` and `make test` (see README.md).
.PHONY: test demo demo-down check setup cluster-up cluster-down cluster-kind

test:  ## Everything: installs/builds what is missing (cached under ~/.cache), static checks, all test tiers.
	scripts/test

demo:  ## Cluster with a real node, images, helm install, examples/03-local, prompts through the router (see README).
	scripts/test --setup-only
	e2e/demo

demo-down:  ## Remove the demo's fleet and release (the cluster keeps running; `make cluster-down` stops it).
	e2e/demo down

setup:  ## Python venv + Go-built cluster binaries + llama.cpp wheel and llama-server + model, without running tests.
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
