"""PolicyFile: reload on change, keep the last good policy on a broken edit."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
import yaml
from gpulab.hub.policy import PolicyError, PolicyFile


def write(path, data) -> None:
    path.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data)


@pytest.fixture
def policy_path(tmp_path, base):
    path = tmp_path / "policy.yaml"
    write(path, base)
    return path


def test_first_load_failure_raises(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("default_group: guests\n")
    with pytest.raises(PolicyError):
        PolicyFile(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the file"):
        PolicyFile(tmp_path / "nope.yaml")


def test_reload_keeps_last_good_policy_on_broken_edit(policy_path, base, caplog):
    pf = PolicyFile(policy_path)
    base["groups"]["vision"]["profiles"] = ["gpu", "gpu-xl"]
    write(policy_path, base)
    with caplog.at_level(logging.ERROR, logger="gpulab.policy"):
        assert pf.reload() is False
    assert pf.policy.groups["vision"].profiles == ("gpu", "cpu")
    assert pf.version == 1
    assert "'gpu-xl' is not a profile" in pf.last_error.problems[0]
    assert "change rejected, keeping version 1" in caplog.text
    assert "groups.vision.profiles[1]: 'gpu-xl' is not a profile" in caplog.text


def test_reload_picks_up_a_good_edit(policy_path, base):
    pf = PolicyFile(policy_path)
    base["groups"]["vision"]["gpu"]["quota_group"] = 32
    write(policy_path, base)
    assert pf.reload() is True
    assert pf.version == 2
    assert pf.policy.groups["vision"].gpu.quota_group == 32
    assert pf.last_error is None


def test_good_edit_after_broken_edit_clears_the_error(policy_path, base):
    pf = PolicyFile(policy_path)
    write(policy_path, "groups: [\n")
    assert pf.reload() is False
    base["default_group"] = "nlp"
    write(policy_path, base)
    assert pf.reload() is True
    assert (pf.version, pf.last_error, pf.policy.default_group) == (2, None, "nlp")


def test_unchanged_file_does_not_bump_the_version(policy_path):
    pf = PolicyFile(policy_path)
    assert pf.reload() is True
    assert pf.version == 1


def test_broken_edit_is_logged_once(policy_path, caplog):
    pf = PolicyFile(policy_path)
    write(policy_path, "default_group: 3\nversion: 9\n")
    with caplog.at_level(logging.ERROR, logger="gpulab.policy"):
        pf.reload()
        pf.reload()
    assert caplog.text.count("change rejected") == 1


def test_listener_gets_the_new_policy(policy_path, base):
    seen = []
    pf = PolicyFile(policy_path, on_change=seen.append)
    base["default_group"] = None
    write(policy_path, base)
    pf.reload()
    assert [p.default_group for p in seen] == [None]


async def test_watch_reloads_on_change(policy_path, base):
    pf = PolicyFile(policy_path)
    task = pf.start(interval=0.05)
    try:
        base["groups"]["nlp"]["gpu"]["quota_group"] = 6
        write(policy_path, base)
        for _ in range(100):
            if pf.version == 2:
                break
            await asyncio.sleep(0.02)
        assert pf.policy.groups["nlp"].gpu.quota_group == 6
    finally:
        await pf.stop()
    assert task.done()


async def test_watch_follows_a_configmap_symlink_swap(tmp_path, base):
    # Kubernetes mounts a ConfigMap as policy.yaml -> ..data/policy.yaml, ..data -> ..<stamp>/
    # and updates it by swapping the ..data symlink atomically.
    first, second = tmp_path / "..2024_01", tmp_path / "..2024_02"
    first.mkdir()
    second.mkdir()
    write(first / "policy.yaml", base)
    os.symlink(first.name, tmp_path / "..data")
    os.symlink("..data/policy.yaml", tmp_path / "policy.yaml")
    pf = PolicyFile(tmp_path / "policy.yaml")
    base["groups"]["vision"]["gpu"]["quota_group"] = 24
    write(second / "policy.yaml", base)
    os.symlink(second.name, tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert await pf.check() is True
    assert pf.policy.groups["vision"].gpu.quota_group == 24


async def test_watch_survives_the_file_disappearing(policy_path):
    pf = PolicyFile(policy_path)
    content = policy_path.read_bytes()
    policy_path.unlink()
    assert await pf.check() is False
    assert pf.policy is not None and pf.last_error is not None
    policy_path.write_bytes(content)
    assert await pf.check() is False  # same content as before: nothing changed
    assert pf.version == 1
