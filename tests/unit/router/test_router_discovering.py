"""EndpointSlices → pod URLs (the pure part of discovery)."""

from __future__ import annotations

from flotilla.router.discovering import ready_urls


def test_ready_urls_from_slices():
    slices = [
        {
            "ports": [{"port": 8080}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": True, "terminating": True}},
                {"addresses": ["10.0.0.4"]},  # no conditions: ready by the API's rules
            ],
        },
        {"ports": [{"port": 9000}], "endpoints": [{"addresses": ["fd00::5"], "conditions": {"ready": True}}]},
        {"endpoints": None},
    ]
    assert ready_urls(slices, 8080) == [
        "http://10.0.0.1:8080",
        "http://10.0.0.4:8080",
        "http://[fd00::5]:9000",
    ]


def test_a_packed_model_is_reached_under_its_path_on_the_pack_pods():
    slices = [{"ports": [{"port": 8000}], "endpoints": [{"addresses": ["10.0.0.7", "10.0.0.8"]}]}]
    assert ready_urls(slices, 8000, "/gemma-a") == [
        "http://10.0.0.7:8000/gemma-a",
        "http://10.0.0.8:8000/gemma-a",
    ]
