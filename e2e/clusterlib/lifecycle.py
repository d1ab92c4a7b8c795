"""`e2e/cluster down`, `status` and `env` (and `up`, re-exported from `starting`)."""

from __future__ import annotations

import sys

from clusterlib import kubeapi, monitoring, nodeconfig, processes, realnode, settings, starting, states

COMPONENTS = starting.COMPONENTS + realnode.COMPONENTS
UpOptions = starting.UpOptions
up = starting.up


def down(cfg: settings.Settings) -> int:
    """Stop every recorded process (SIGTERM, then SIGKILL after 10 s) and remove the state dir."""
    with states.locked(cfg):
        state = states.read(cfg)
        if state is None:
            states.clear(cfg.state_dir, keep_logs=False)  # logs of a failed `up`, if any
            print(f"no cluster running (state {cfg.state_dir}); nothing to stop")
            return 0
        running = [p.name for p in state.procs if processes.alive(p)]
        killed = realnode.stop(cfg, state) if realnode.present(state) else []
        killed += processes.stop(state.procs)
        states.clear(cfg.state_dir, keep_logs=False)
    note = f" ({', '.join(killed)} needed SIGKILL)" if killed else ""
    print(f"cluster down: stopped {', '.join(running) or 'nothing (all had exited)'}{note}")
    return 0


def status(cfg: settings.Settings, quiet: bool = False) -> str:
    """'up', 'degraded' (recorded but something is not running) or 'down'; prints a table unless quiet."""
    state = states.read(cfg)
    if state is None:
        if not quiet:
            print(f"down (no cluster recorded in {cfg.state_dir})")
        return "down"
    ok, why = starting.healthy(state)
    if quiet:
        return "up" if ok else "degraded"
    print(f"{'up' if ok else 'degraded: ' + why}  server {state.server}  state {cfg.state_dir}")
    total = 0
    for proc in state.procs:
        rss = processes.rss_bytes(proc)
        total += rss
        running = "running" if rss else "NOT RUNNING"
        print(f"  {proc.name:<24} pid {proc.pid:<8} {running:<12} {rss / 2**20:7.0f} MiB")
    print(f"  {'total resident memory':<46} {total / 2**20:7.0f} MiB")
    if ok:
        ready, waiting = starting.nodes_ready(kubeapi.Client(state.server, state.token))
        print(f"  nodes: {', '.join(starting.NODE_NAMES)} {'Ready' if ready else waiting}")
        if realnode.present(state):
            node_ok, node_why = realnode.node_ready(kubeapi.Client(state.server, state.token))
            print(f"  real node: {nodeconfig.NODE_NAME} {'Ready' if node_ok else node_why}")
        if monitoring.present(state):
            print(f"  prometheus: {monitoring.url(state)}")
        print(f"  export KUBECONFIG={cfg.kubeconfig}")
    return "up" if ok else "degraded"


def print_env(cfg: settings.Settings) -> int:
    """Shell exports for `eval "$(e2e/cluster env)"`; warns on stderr when no cluster is up."""
    if states.read(cfg) is None:
        print("# warning: no cluster is running; start one with e2e/cluster up", file=sys.stderr)
    path = ":".join(str(d) for d in cfg.bin_dirs)
    print(f"export KUBECONFIG={cfg.kubeconfig}")
    print(f'export PATH="{path}:$PATH"')
    state = states.read(cfg)
    if state is not None and realnode.present(state):  # for `ctr` and scripts/build-images --load
        print(f"export CONTAINERD_ADDRESS={realnode.files_of(cfg).containerd_socket}")
    return 0
