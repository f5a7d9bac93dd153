"""microceph's keys: new random ones at every start, in files only their owner can read.

They used to be constants in the script, stored world-readable; anyone who read the script
or the file had the gateway's S3 keys, and with them every user's outputs.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_s3_keys_differ_between_clusters(ceph_s3: Any, another_microceph: Any) -> None:
    first = {ceph_s3.alice_key, ceph_s3.alice_secret, ceph_s3.bob_key, ceph_s3.bob_secret}
    second = {
        another_microceph.alice_key,
        another_microceph.alice_secret,
        another_microceph.bob_key,
        another_microceph.bob_secret,
    }
    assert len(first) == 4 and len(second) == 4
    assert first.isdisjoint(second)


def test_cephx_keyring_differs_between_clusters(ceph_s3: Any, another_microceph: Any) -> None:
    assert (ceph_s3.mc_dir / "keyring").read_text() != (
        another_microceph.mc_dir / "keyring"
    ).read_text()


def test_key_files_are_owner_only(ceph_s3: Any) -> None:
    secrets = [
        ceph_s3.mc_dir / "s3.env",
        ceph_s3.mc_dir / "keyring",
        ceph_s3.mc_dir / "rgw.key",
        *sorted((ceph_s3.mc_dir / "log").glob("user-*.json")),
    ]
    assert len(secrets) == 5
    assert {str(p): _mode(p) & 0o077 for p in secrets} == {str(p): 0 for p in secrets}
    assert _mode(ceph_s3.mc_dir) & 0o077 == 0
