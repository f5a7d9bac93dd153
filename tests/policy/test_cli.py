"""`gpulab admin check-policy`, run as the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GPULAB = ROOT / ".venv" / "bin" / "gpulab"


def gpulab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GPULAB), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def broken(tmp_path, base) -> Path:
    base["default_group"] = "guests"
    base["groups"]["vision"]["gpu"]["per_server"] = 9
    base["groups"]["vision"]["gpu"]["quota_user"] = 9
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def test_check_policy_on_the_demo_policy_exits_0_with_a_summary(demo_path):
    result = gpulab("admin", "check-policy", str(demo_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid policy" in result.stdout
    assert "vision: profiles gpu, cpu; GPUs a100: 2/server 4/job, quota 4/user 8/group" in (
        result.stdout
    )
    assert "a100: nvidia.com/gpu, at most 4 per node" in result.stdout


def test_check_policy_prints_every_problem_and_exits_1(tmp_path, base):
    result = gpulab("admin", "check-policy", str(broken(tmp_path, base)))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "default_group: 'guests' is not a group (groups: default, nlp, vision)",
        "groups.vision.gpu.per_server: 9 exceeds gpu_types.a100.max_per_node 8",
    ]
    assert "invalid policy (2 problems)" in result.stderr


def test_check_policy_json_on_failure(tmp_path, base):
    result = gpulab("admin", "check-policy", "--json", str(broken(tmp_path, base)))
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False and len(out["problems"]) == 2


def test_check_policy_json_on_success(demo_path):
    result = gpulab("admin", "check-policy", "--json", str(demo_path))
    assert result.returncode == 0
    out = json.loads(result.stdout)
    assert out["ok"] is True
    assert [g["name"] for g in out["groups"]] == ["vision", "nlp", "default"]
    assert out["warnings"] == []


def test_check_policy_on_a_missing_file_exits_1(tmp_path):
    result = gpulab("admin", "check-policy", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "cannot read the file" in result.stdout


def test_check_policy_yaml_error_names_the_line(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ngroups:\n  vision: {profiles: [gpu}\n")
    result = gpulab("admin", "check-policy", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith("line 3, column 26: YAML error:")


def test_check_policy_help_explains_exit_codes():
    result = gpulab("admin", "check-policy", "--help")
    assert result.returncode == 0
    assert "Exit status: 0 when the policy is valid" in result.stdout
    assert "docs/policy.md" in result.stdout


def test_admin_without_a_command_prints_help_and_exits_2():
    result = gpulab("admin")
    assert result.returncode == 2
    assert "check-policy" in result.stdout


def test_check_policy_does_not_import_jupyterhub(demo_path):
    code = (
        "import sys; from gpulab.cli import main; "
        f"rc = main(['admin', 'check-policy', {str(demo_path)!r}]); "
        "assert 'jupyterhub' not in sys.modules, 'jupyterhub imported'; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_check_policy_shows_whom_researchers_are_told_to_ask(demo_path):
    result = gpulab("admin", "check-policy", "--json", str(demo_path))
    out = json.loads(result.stdout)
    assert out["contact"] == "the gpulab admins (gpulab-admins@example.org)"
    assert {g["contact"] for g in out["groups"]} == {out["contact"]}


def test_check_policy_warns_when_nobody_is_named_to_ask(tmp_path, base):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    result = gpulab("admin", "check-policy", str(path))
    assert result.returncode == 0
    assert "warning: platform.contact is not set" in result.stdout
