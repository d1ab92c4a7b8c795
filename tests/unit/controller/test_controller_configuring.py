"""The `flotilla operator` flags and the kopf settings they imply."""

from __future__ import annotations

import argparse
import logging
import socket

import kopf
import pytest

from flotilla import errors
from flotilla.controller import commands, configuring
from flotilla.reconcile import kube


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.add_arguments("operator", parser)
    return parser.parse_args(list(argv))


def test_defaults_are_all_namespaces_standalone() -> None:
    config = commands.config_from(parse())
    assert config == configuring.OperatorConfig()
    assert config.clusterwide
    assert config.peering is None


def test_namespaces_repeatable_and_deduplicated() -> None:
    config = commands.config_from(parse("-n", "ai", "--namespace", "ml", "-n", "ai", "--log-level", "debug"))
    assert config.namespaces == ("ai", "ml")
    assert not config.clusterwide
    assert config.log_level == "DEBUG"


def test_autoscaler_on_by_default_and_off_with_flag() -> None:
    assert commands.config_from(parse()).autoscaler is True
    assert commands.config_from(parse("--no-autoscaler")).autoscaler is False


def test_bad_autoscaler_setting_is_a_usage_error_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_AUTOSCALER_INTERVAL", "soon")
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")  # connecting would be a different error
    with pytest.raises(errors.UsageError, match="FLOTILLA_AUTOSCALER_INTERVAL must be a number"):
        commands.run("operator", parse())
    monkeypatch.setenv("FLOTILLA_AUTOSCALER_INTERVAL", "-1")
    with pytest.raises(errors.UsageError, match="more than 0"):
        commands.run("operator", parse())
    # with the autoscaler off its settings are not read
    with pytest.raises(errors.FlotillaError, match="cannot load Kubernetes credentials"):
        commands.run("operator", parse("--no-autoscaler"))


def test_metrics_off_by_default_and_parsed_from_a_url() -> None:
    assert commands.config_from(parse()).metrics is None
    assert commands.config_from(parse("--metrics", "http://0.0.0.0:9090/metrics")).metrics == (
        "0.0.0.0",
        9090,
    )
    assert commands.config_from(parse("--metrics", "http://127.0.0.1:9191")).metrics == ("127.0.0.1", 9191)


def test_metrics_port_taken_is_an_error_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")  # connecting would be a different error
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(errors.FlotillaError, match=f"cannot serve metrics on 127.0.0.1:{port}: Address"):
            commands.run(
                "operator", parse("--no-autoscaler", "--metrics", f"http://127.0.0.1:{port}/metrics")
            )


def test_namespace_and_all_namespaces_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("-n", "ai", "--all-namespaces")
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-n", "Not_A_Namespace"], "not a valid namespace name"),
        (["--workers", "0"], "--workers must be 1 or more"),
        (["--liveness", "8080"], "must be a URL"),
        (["--metrics", "9090"], "must be a URL"),
        (["--metrics", "http://0.0.0.0/metrics"], "must be a URL"),
        (["--metrics", "http://0.0.0.0:9090/healthz"], "must be a URL"),
        (["--metrics", "https://0.0.0.0:9090/metrics"], "must be a URL"),
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(errors.UsageError, match=message):
        commands.config_from(parse(*argv))


def test_configure_sets_kopf_for_flotilla() -> None:
    config = configuring.OperatorConfig(namespaces=("ai",), workers=8, server_timeout=120)
    settings = configuring.configure(kopf.OperatorSettings(), config)
    assert settings.peering.standalone is True
    assert settings.scanning.disabled is True
    assert settings.posting.level == logging.WARNING
    assert settings.posting.reporting_component == "flotilla"
    assert settings.execution.max_workers == 8
    assert (settings.watching.server_timeout, settings.watching.client_timeout) == (120, 150)
    assert settings.watching.connect_timeout == settings.networking.connect_timeout == kube.CONNECT_TIMEOUT
    assert settings.networking.request_timeout == kube.READ_TIMEOUT
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    selectors = {(s.group, s.version, s.any_name): v for s, v in settings.watching.label_selectors.items()}
    managed = "app.kubernetes.io/managed-by=flotilla"
    assert selectors == {
        ("apps", "v1", "deployments"): managed,
        ("", "v1", "services"): managed,
        ("", "v1", "configmaps"): managed,
        ("autoscaling", "v2", "horizontalpodautoscalers"): managed,
        ("policy", "v1", "poddisruptionbudgets"): managed,
        ("", "v1", "serviceaccounts"): managed,
        ("rbac.authorization.k8s.io", "v1", "roles"): managed,
        ("rbac.authorization.k8s.io", "v1", "rolebindings"): managed,
    }


def test_peering_turns_standalone_off() -> None:
    settings = configuring.configure(kopf.OperatorSettings(), configuring.OperatorConfig(peering="flotilla"))
    assert settings.peering.standalone is False
    assert settings.peering.name == "flotilla"
    assert settings.peering.clusterwide is True


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("Handler 'child_event' succeeded.", False),
        ("Indexer 'deployment_index' succeeded.", False),
        ("Handler 'reconcile_fleet' failed temporarily: 409", True),
        ("generation 2 applied: 1 children changed, 7 unchanged, 0 pruned", True),
    ],
)
def test_quiet_successes(message: str, kept: bool) -> None:
    record = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)
    assert configuring.QuietSuccesses().filter(record) is kept
