"""`helm install`, `upgrade` and `uninstall` of charts/flotilla on the local cluster (real apiserver).

On the kwok nodes the operator pod is simulated (kwok marks it Running and Ready; no container runs), so
the operator itself runs here as a local process with the Deployment's own args and FLOTILLA_* env,
authenticated as the release's ServiceAccount: it reconciles a fleet with exactly the chart's RBAC.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chartkit
import operatorkit
import pytest
from conftest import Release

pytestmark = pytest.mark.cluster

CRD = "modelfleets.flotilla.dev"
MINIMAL = chartkit.ROOT / "examples" / "01-minimal" / "fleet.yaml"
LOCAL_IMAGES = chartkit.GOLDEN / "local-images" / "values.yaml"


def _release_objects(release: Release) -> list[str]:
    """Every object of the release that exists now, namespaced and cluster-scoped ("kind/name")."""
    selector = f"app.kubernetes.io/instance={release.name}"
    namespaced = operatorkit.kubectl(
        "get", "deployments,replicasets,pods,serviceaccounts,services,configmaps,roles,rolebindings",
        "-n", release.namespace, "-l", selector, "-o", "name",
    )  # fmt: skip
    kinds = "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings"
    cluster = operatorkit.kubectl("get", kinds, "-l", selector, "-o", "name")
    return (namespaced + cluster).split()


def _deployment(release: Release) -> dict[str, Any]:
    return dict(operatorkit.get_json("deployment", release.fullname, "-n", release.namespace))


def _can(release: Release, verb: str, resource: str, namespace: str) -> bool:
    account = f"system:serviceaccount:{release.namespace}:{release.fullname}"
    done = operatorkit.kubectl_try("auth", "can-i", verb, resource, "-n", namespace, "--as", account)
    return done.stdout.strip() == "yes"


def test_install_creates_the_operator_and_its_crd(release: Release) -> None:
    release.install()
    objects = _release_objects(release)
    for expected in (
        f"deployment.apps/{release.fullname}",
        f"serviceaccount/{release.fullname}",
        f"service/{release.fullname}-metrics",
        f"configmap/{release.fullname}-dashboard",
        f"clusterrole.rbac.authorization.k8s.io/{release.fullname}",
        f"clusterrolebinding.rbac.authorization.k8s.io/{release.fullname}",
        f"validatingadmissionpolicy.admissionregistration.k8s.io/{release.fullname}-modelfleets",
        f"validatingadmissionpolicybinding.admissionregistration.k8s.io/{release.fullname}-modelfleets",
    ):
        assert expected in objects, objects
    release.wait_available()  # kwok runs the pod (simulated)
    crd = operatorkit.get_json("crd", CRD)
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])


def test_the_service_account_has_exactly_the_operators_permissions(release: Release) -> None:
    release.install()
    for verb, resource in [
        ("watch", "modelfleets.flotilla.dev"), ("patch", "modelfleets.flotilla.dev/status"),
        ("create", "deployments.apps"), ("delete", "services"), ("patch", "configmaps"),
        ("create", "horizontalpodautoscalers.autoscaling"), ("create", "poddisruptionbudgets.policy"),
        ("create", "roles.rbac.authorization.k8s.io"), ("list", "endpointslices.discovery.k8s.io"),
        ("create", "events"), ("get", "secrets"),
    ]:  # fmt: skip
        assert _can(release, verb, resource, "default"), f"cannot {verb} {resource}"
    for verb, resource in [
        ("list", "secrets"), ("watch", "secrets"), ("create", "pods"), ("create", "namespaces"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"), ("delete", "modelfleets.flotilla.dev"),
        ("create", "endpointslices.discovery.k8s.io"), ("escalate", "roles.rbac.authorization.k8s.io"),
    ]:  # fmt: skip
        assert not _can(release, verb, resource, "default"), f"can {verb} {resource}"


def _model_container(namespace: str) -> dict[str, Any] | None:
    done = operatorkit.kubectl_try("get", "deployment", "minimal-pocket", "-n", namespace, "-o", "json")
    if done.returncode != 0:
        return None
    container: dict[str, Any] = json.loads(done.stdout)["spec"]["template"]["spec"]["containers"][0]
    return container


def _run_operator_like_the_pod(
    release: Release,
    fleet_namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    expect: Callable[[dict[str, Any]], bool] = bool,
) -> None:
    """Run `flotilla operator` with the Deployment's args and env as its ServiceAccount, apply the minimal
    example fleet and wait until the model Deployment satisfies `expect` and the router's RoleBinding exists.

    Other operators watching all namespaces in the same test session (tests/integration) may render the
    fleet too, with their own settings; so this waits for this operator's render rather than reading once,
    and proves the RBAC by this operator's log: no Forbidden, no error.
    """
    container = _deployment(release)["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["flotilla", "operator"]
    for item in container["env"]:
        monkeypatch.setenv(item["name"], item.get("value", ""))  # the apiserver drops empty values
    args = [a for a in container["args"] if not a.startswith("--liveness")]  # a local port instead
    kubeconfig = operatorkit.token_kubeconfig(tmp_path, release.namespace, release.fullname)
    process = operatorkit.OperatorProcess(kubeconfig, tmp_path, args)
    process.start()
    try:
        operatorkit.kubectl("apply", "-n", fleet_namespace, "-f", str(MINIMAL))
        operatorkit.wait_until(
            lambda: (c := _model_container(fleet_namespace)) is not None and expect(c),
            60,
            "the operator to render the model Deployment with the chart's settings",
        )
        operatorkit.wait_until(
            lambda: operatorkit.kubectl_try("get", "rolebinding", "minimal-router", "-n", fleet_namespace)
            .returncode == 0,
            60,
            "the router's RoleBinding (needs the EndpointSlice read the operator holds)",
        )  # fmt: skip
    finally:
        process.stop()
    assert not operatorkit.log_errors(process.log()), process.log()[-3000:]
    assert "Forbidden" not in process.log(), process.log()[-3000:]


def test_operator_reconciles_a_fleet_under_the_charts_rbac_and_settings(
    release: Release, fleet_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runtimes.llamacpp.{image,flavor} reach the operator's render: the local image and its command."""
    release.install("--values", str(LOCAL_IMAGES))

    def local_llamacpp(container: dict[str, Any]) -> bool:
        command = ["python", "-m", "llama_cpp.server"]
        return bool(container["image"] == "flotilla-llamacpp:0.1.0" and container["command"] == command)

    _run_operator_like_the_pod(release, fleet_namespace, tmp_path, monkeypatch, local_llamacpp)


def test_namespaced_release_serves_only_its_namespaces(
    release: Release, fleet_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release.install("--set-json", f'operator.watchNamespaces=["{fleet_namespace}"]')
    assert not [o for o in _release_objects(release) if o.startswith("cluster")]  # the policy is bound to
    # the listed namespaces (tests/chart/test_chart_policy.py)
    assert _can(release, "create", "deployments.apps", fleet_namespace)
    assert not _can(release, "create", "deployments.apps", "default")
    _run_operator_like_the_pod(release, fleet_namespace, tmp_path, monkeypatch)


def test_upgrade_with_a_new_setting_rolls_the_operator_only(release: Release, fleet_namespace: str) -> None:
    release.install()
    operatorkit.kubectl("apply", "-n", fleet_namespace, "-f", str(MINIMAL))
    before = release.wait_available()
    chartkit.helm(
        "upgrade", release.name, str(chartkit.CHART), "--namespace", release.namespace, "--reuse-values",
        "--set", "operator.logLevel=DEBUG", timeout=240,
    )  # fmt: skip
    after = release.wait_available()
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert "--log-level=DEBUG" in after["spec"]["template"]["spec"]["containers"][0]["args"]
    replicasets = operatorkit.get_json(
        "replicasets", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}"
    )["items"]
    assert len(replicasets) == 2  # the old template's and the new one's: the operator pod was replaced
    assert operatorkit.kubectl_try("get", "modelfleet", "minimal", "-n", fleet_namespace).returncode == 0
    history = json.loads(chartkit.helm("history", release.name, "-n", release.namespace, "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "deployed"]


def test_uninstall_leaves_no_operator_objects_and_keeps_the_crd(
    release: Release, fleet_namespace: str
) -> None:
    release.install()
    operatorkit.kubectl("apply", "-n", fleet_namespace, "-f", str(MINIMAL))
    chartkit.helm("uninstall", release.name, "--namespace", release.namespace, "--wait")
    operatorkit.wait_until(
        lambda: not _release_objects(release), 60, "the release's objects (and its pods) to be gone"
    )
    assert operatorkit.kubectl_try("get", "crd", CRD).returncode == 0  # helm never deletes crds/
    # ... and so the fleets survive the operator's removal.
    assert operatorkit.kubectl_try("get", "modelfleet", "minimal", "-n", fleet_namespace).returncode == 0
