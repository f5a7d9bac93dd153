"""On the platform (kubesim without Kueue), the hub says at start that Kueue is missing and
that gpulab admits servers and jobs itself."""

from __future__ import annotations

import time

DEADLINE_SECONDS = 60  # the hub logs it right after start; a bound, not a speed assertion


def test_the_hub_log_says_kueue_is_missing(platform) -> None:
    log = platform.state_dir / "jupyterhub.log"
    wanted = "Kueue: Kueue is not installed"
    deadline = time.monotonic() + DEADLINE_SECONDS
    while wanted not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {wanted!r} in {log}"
        time.sleep(0.5)
    line = next(x for x in log.read_text(errors="replace").splitlines() if wanted in x)
    assert "gpulab admits servers and jobs itself" in line
