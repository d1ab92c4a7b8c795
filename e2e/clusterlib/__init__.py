"""Support code for `e2e/cluster`: a real local Kubernetes (etcd, kube-apiserver, controller-manager,
scheduler) built from source, with kwok simulating one CPU node and one GPU node.

Stdlib only, so `e2e/cluster` runs without the project's virtualenv (CI calls it before anything is
installed). Modules, from the bottom up:

- `settings`: pinned versions (read from e2e/gomod/*/go.mod), cache and state paths, `ClusterError`;
- `building`: `go build` of the pinned tools into the cache, kwok's stage configs;
- `manifests`: component command lines and fake node objects (pure);
- `keys`: admin token, service-account key pair, kubeconfig;
- `processes`: spawn/stop by recorded PID, log tails, resident memory;
- `kubeapi`: a tiny REST client for readiness checks;
- `states`: the `cluster.json` record and its lock;
- `starting`: `up`; `lifecycle`: `down`, `status`, `env`; `cli`: argument parsing and exit codes;
- `sessions` and `waiting`: helpers for test harnesses (the root conftest.py uses them);
- the opt-in Prometheus (`up --with prometheus`): `scraping` (the chart's monitors as scrape configs, pure,
  shared with tests/integration/promkit.py), `monitoring` (render, configure, start);
- the opt-in real node: `nodeconfig` (its config files, pure), `nodeimages` (pause/echo images built
  without Docker), `realnode` (start/stop), `relay` (pods -> apiserver on 127.0.0.1).
"""
