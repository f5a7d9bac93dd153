"""A broken policy file never stops a restart: PolicyFile starts on the last good copy, says
so loudly, and only fails when there is no copy."""

from __future__ import annotations

import logging
import stat

import pytest
import yaml
from gpulab.hub.policy import PolicyError, PolicyFile
from gpulab.hub.policy.last_good import STATE_DIR_ENV, last_good_candidates

BROKEN = "version: 1\ndefault_group: nobody\ngroups: {vision: {profiles: [gpu-xl]}}\n"


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "state"
    monkeypatch.setenv(STATE_DIR_ENV, str(path))
    return path


@pytest.fixture
def policy_path(tmp_path, base):
    folder = tmp_path / "config"
    folder.mkdir()
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_a_good_load_keeps_an_owner_only_copy_beside_the_file(policy_path):
    PolicyFile(policy_path)
    copy = policy_path.with_name(".policy.yaml.last-good")
    assert copy.read_bytes() == policy_path.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert [p.name for p in copy.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_restart_with_a_broken_file_runs_on_the_last_good_copy(policy_path, caplog):
    good = PolicyFile(policy_path).policy
    policy_path.write_text(BROKEN)  # broken while the services ran; now they restart
    with caplog.at_level(logging.ERROR, logger="gpulab.policy"):
        pf = PolicyFile(policy_path)
    assert pf.policy.groups.keys() == good.groups.keys()
    assert pf.degraded
    assert pf.problems and all(p in caplog.text for p in pf.problems)
    status = pf.status()
    assert status["degraded"] is True
    assert status["fallback"] == str(policy_path.with_name(".policy.yaml.last-good"))
    assert status["problems"] == pf.problems
    error = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert str(policy_path) in error.getMessage()
    assert "last good copy" in error.getMessage()
    assert status["fallback"] in error.getMessage()
    # The broken copy never overwrote the good one.
    assert b"gpu-xl" not in policy_path.with_name(".policy.yaml.last-good").read_bytes()


async def test_degraded_ends_when_the_file_is_fixed(policy_path, base, caplog):
    PolicyFile(policy_path)
    policy_path.write_text(BROKEN)
    pf = PolicyFile(policy_path)
    with caplog.at_level(logging.ERROR, logger="gpulab.policy"):
        assert await pf.check() is False  # the same broken content: not logged again
    assert "rejected" not in caplog.text
    base["groups"]["vision"]["profiles"] = ["gpu"]
    policy_path.write_text(yaml.safe_dump(base))
    assert await pf.check() is True
    assert not pf.degraded and pf.problems == []
    assert pf.policy.groups["vision"].profiles == ("gpu",)


def test_without_a_copy_start_fails_as_before(policy_path):
    policy_path.write_text(BROKEN)
    with pytest.raises(PolicyError):
        PolicyFile(policy_path)


def test_read_only_folder_keeps_the_copy_in_the_state_dir(policy_path, state_dir, monkeypatch):
    from gpulab.hub.policy import last_good

    real_write = last_good._write_atomically

    def write(target, data, mode):  # a mounted ConfigMap (chmod does not stop root)
        if target.parent == policy_path.parent:
            raise PermissionError(30, "Read-only file system")
        real_write(target, data, mode)

    monkeypatch.setattr(last_good, "_write_atomically", write)
    PolicyFile(policy_path)
    copy = last_good_candidates(policy_path)[1]
    assert copy.is_relative_to(state_dir)
    assert copy.read_bytes() == policy_path.read_bytes()
    policy_path.write_text(BROKEN)
    assert PolicyFile(policy_path).fallback == copy


def test_state_dir_is_used_when_the_beside_copy_is_missing(policy_path, state_dir):
    """The read order: beside the file first, then the state dir."""
    copy = last_good_candidates(policy_path)[1]
    copy.parent.mkdir(parents=True)
    copy.write_bytes(policy_path.read_bytes())
    policy_path.write_text(BROKEN)
    assert PolicyFile(policy_path).fallback == copy


def test_hub_config_starts_on_the_last_good_copy(policy_path, monkeypatch):
    """The hub's start path (named servers read at config time) goes through the fallback."""
    from gpulab.hub import config, shared_policy

    PolicyFile(policy_path)
    policy_path.write_text(BROKEN)
    monkeypatch.setattr(shared_policy, "_files", {})
    assert isinstance(config._allow_named_servers(str(policy_path)), bool)
    assert shared_policy.shared_policy_file(str(policy_path)).degraded
