"""Command line of `e2e/cluster`: parses arguments, maps errors to one message and an exit code."""

from __future__ import annotations

import argparse
import os
import sys

from clusterlib import building, kuberay, lifecycle, nodeimages, settings

EXIT_DOWN = 3  # `status` when no cluster runs (as systemctl/LSB: "not running")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="e2e/cluster",
        description="A local Kubernetes built from source with kwok GPU/CPU nodes. "
        "State: $FLOTILLA_CLUSTER_DIR (default ~/.cache/flotilla/cluster); binaries: $FLOTILLA_CACHE.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the pinned binaries into the cache (skips what is built)")
    build.add_argument(
        "--only",
        action="append",
        metavar="TARGET",
        help="kubernetes, node, coredns, etcd, kwok, helm, prometheus, keda, keda-crds, kuberay-crds,"
        " prometheus-adapter or seaweedfs",
    )
    build.add_argument(
        "--real-node", action="store_true", help="also build kubelet, kube-proxy and the node's images"
    )
    up = sub.add_parser(
        "up", help="start the cluster (building first if needed) and wait until nodes are Ready"
    )
    up.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)"
    )
    up.add_argument("--etcd-port", type=int, default=0, help="etcd client port (default: a free port)")
    up.add_argument("--apiserver-port", type=int, default=0, help="kube-apiserver port (default: free port)")
    up.add_argument(
        "--component-arg",
        action="append",
        default=[],
        metavar="COMPONENT=FLAG",
        help="extra flag for one component, e.g. kube-apiserver=--feature-gates=Foo=true (repeatable)",
    )
    up.add_argument("--no-build", action="store_true", help="fail instead of building missing binaries")
    up.add_argument(
        "--real-node",
        action="store_true",
        default=os.environ.get("FLOTILLA_REAL_NODE") == "1",
        help="also run the real worker node real-0 (containerd, kubelet, kube-proxy; needs root); "
        "adds it to a running cluster. Default: $FLOTILLA_REAL_NODE=1",
    )
    up.add_argument(
        "--real-node-untainted",
        action="store_true",
        help="--real-node without the node's taint; kwok-cpu-0 is tainted instead, so every CPU pod "
        "runs for real (the demo)",
    )
    up.add_argument(
        "--with",
        dest="addons",
        action="append",
        default=[],
        choices=["prometheus", "kuberay-crds"],
        help="also start an add-on (adds it to a running cluster): prometheus = the built Prometheus "
        "scraping routers, operator and model pods through the chart's monitors; kuberay-crds = KubeRay's "
        "RayService CRD, no operator (docs/cluster.md)",
    )
    sub.add_parser("down", help="stop the cluster started by `up` and remove its state")
    status = sub.add_parser("status", help="show whether the cluster runs (exit 0 up, 1 degraded, 3 down)")
    status.add_argument("--quiet", "-q", action="store_true", help="print nothing, only set the exit code")
    sub.add_parser("env", help="print shell exports: KUBECONFIG and PATH with kubectl/helm")
    return parser


def _component_args(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, list[str]]:
    extra: dict[str, list[str]] = {}
    for pair in pairs:
        component, sep, flag = pair.partition("=")
        if not sep or component not in lifecycle.COMPONENTS or not flag.startswith("-"):
            parser.error(  # exits 2, like every other usage error
                f"--component-arg wants COMPONENT=--flag with COMPONENT one of "
                f"{', '.join(lifecycle.COMPONENTS)}; got {pair!r}"
            )
        extra.setdefault(component, []).append(flag)
    return extra


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        cfg = settings.load()
        if args.command == "build":
            building.build(cfg, args.only, args.real_node)
            if args.real_node:
                nodeimages.build(cfg)
            return 0
        if args.command == "up":
            options = lifecycle.UpOptions(
                timeout=args.timeout,
                etcd_port=args.etcd_port,
                apiserver_port=args.apiserver_port,
                extra_args=_component_args(parser, args.component_arg),
                build=not args.no_build,
                real_node=args.real_node or args.real_node_untainted,
                untainted=args.real_node_untainted,
                prometheus="prometheus" in args.addons,
            )
            done = lifecycle.up(cfg, options)
            if done == 0 and "kuberay-crds" in args.addons:
                kuberay.install(cfg, build=not args.no_build)
            return done
        if args.command == "down":
            return lifecycle.down(cfg)
        if args.command == "status":
            state = lifecycle.status(cfg, quiet=args.quiet)
            return {"up": 0, "degraded": 1, "down": EXIT_DOWN}[state]
        if args.command == "env":
            return lifecycle.print_env(cfg)
    except settings.ClusterError as exc:
        print(f"e2e/cluster {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `e2e/cluster status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"e2e/cluster {args.command}: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")
