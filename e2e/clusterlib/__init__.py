"""Support code for `e2e/cluster`: a real local Kubernetes (etcd, kube-apiserver, controller-manager,
scheduler) built from source, with kwok simulating one CPU node and one GPU node.

Stdlib only, so `e2e/cluster` runs without the project's virtualenv (CI calls it before anything is
installed). Modules: `settings` (paths, pins, env), `building` (go builds into the cache), `keys`
(token, service-account keys, kubeconfig), `manifests` (command lines and node objects, pure),
`processes` (spawn/stop by PID), `kubeapi` (tiny REST client), `lifecycle` (up/down/status), `cli`.
"""
