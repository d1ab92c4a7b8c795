"""The end-to-end scenarios' shared setup: the images loaded into the real node, the chart installed with
its operator running in a pod on the real node (helm, as a platform team would), and examples/03-local
applied in its own namespace, through the same demolib steps `make demo` runs.

The release watches only its namespace (other tests in the session run their own operators), and all of it
is uninstalled when the scenarios end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from objectstores import Store, on_node

from clusterlib.sessions import RealNode
from demolib import installing
from demolib.forwarding import port_forward
from demolib.installing import Provider, Target
from demolib.tools import Tools

TARGET = Target(
    namespace="flotilla-e2e",
    release="flotilla-e2e",
    operator_namespace="flotilla-e2e-system",
    watch_fleet_namespace_only=True,
)
READY_TIMEOUT_S = 600  # the first Gemma pod on a loaded 2-core machine: image unpack, model load


@pytest.fixture(scope="package")
def tools(kubeconfig: Path) -> Tools:
    return Tools(kubeconfig)


@pytest.fixture(scope="package")
def installed(real_node: RealNode, tools: Tools) -> Iterator[Target]:
    """Images loaded, the operator helm-installed on the real node, the example fleet Ready."""
    installing.build_images(real_node.containerd_socket)
    tools.apply("default", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TARGET.namespace}})
    try:
        installing.install_operator(tools, TARGET)
        installing.apply_example(tools, TARGET, Provider("stand-in"))
        installing.wait_fleet_ready(tools, TARGET.namespace, READY_TIMEOUT_S)
        yield TARGET
    finally:
        for namespace, release in ((TARGET.namespace, None), (TARGET.operator_namespace, TARGET.release)):
            if release is not None:
                tools.helm("uninstall", release, "-n", namespace, "--ignore-not-found", "--wait")
            tools.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true", timeout=300)


@pytest.fixture(scope="package")
def router_url(installed: Target, tools: Tools) -> Iterator[str]:
    """The example fleet's router Service, reached from outside the cluster through kubectl port-forward."""
    with port_forward(tools, installed.namespace, f"svc/{installing.FLEET}-router", 8080) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="package")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A real S3-compatible store (SeaweedFS built from source) that the scenarios' pods reach; stopped when
    the scenarios end."""
    store = on_node(tmp_path_factory.mktemp("object-store"))
    store.start()
    yield store
    store.stop()
