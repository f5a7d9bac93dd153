"""Which submitted specs the gateway parses on its event loop (small JSON, data already
parsed) and which in a worker thread (YAML, large documents): pure."""

from __future__ import annotations

import json

from gpulab.hub.jobs.spec import INLINE_PARSE_BYTES, parses_quickly

SPEC = {"name": "t", "image": "harbor.local/shared/scipy:2024.10", "command": ["true"]}


def test_a_small_json_spec_parses_on_the_loop() -> None:
    assert parses_quickly(json.dumps(SPEC).encode(), "application/json")


def test_json_without_a_content_type_is_recognised() -> None:
    assert parses_quickly(json.dumps(SPEC).encode(), None)


def test_yaml_goes_to_a_thread() -> None:
    assert not parses_quickly(b"name: t\nimage: x\ncommand: [true]\n", "application/yaml")


def test_a_large_json_spec_goes_to_a_thread() -> None:
    big = json.dumps({**SPEC, "command": ["echo", "x" * INLINE_PARSE_BYTES]}).encode()
    assert not parses_quickly(big, "application/json")


def test_data_already_parsed_needs_no_thread() -> None:
    assert parses_quickly(SPEC, None)
