"""Job ids and idempotency keys (pure).

A job id is ``<name>-<6 base32 characters>`` (``train-resnet-k3x7qa``): a DNS label of at most
47 characters, used as the Job's ``metadata.name``, the ``gpulab.io/job-id`` label and the
job's S3 prefix. A client's ``Idempotency-Key`` is hashed, together with the owner, into the
``gpulab.io/submit-key`` label, so that the gateway finds the Job of a retried submit with a
label selector.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from ..names import is_dns_label

__all__ = [
    "IDEMPOTENCY_KEY_MAX",
    "JOB_ID_SUFFIX_LEN",
    "is_job_id",
    "new_job_id",
    "submit_key",
    "valid_idempotency_key",
]

JOB_ID_SUFFIX_LEN = 6
NAME_MAX = 40
IDEMPOTENCY_KEY_MAX = 255
_JOB_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?-[a-z2-7]{6}")
# A scheduled run: its definition's id (shaped like a job id) and the minute it was due, as
# the CronJob controller names the Jobs it makes.
_RUN_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?-[a-z2-7]{6}-[0-9]{1,12}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


def new_job_id(name: str) -> str:
    """A fresh id for a job called ``name`` (a DNS label of at most 40 characters): the name,
    ``-`` and 30 random bits in lowercase base32 (collisions are caught by the API server's
    409 on create; the gateway retries with a new id)."""
    if not is_dns_label(name) or len(name) > NAME_MAX:
        raise ValueError(f"{name!r} is not a job name (a DNS label of at most {NAME_MAX})")
    suffix = base64.b32encode(secrets.token_bytes(5)).decode("ascii").lower()
    return f"{name}-{suffix[:JOB_ID_SUFFIX_LEN]}"


def is_job_id(value: object) -> bool:
    """True for a string shaped like :func:`new_job_id`'s results (use it on ids that come
    from URLs before they reach a label selector or an S3 key). A saved definition's
    scheduled runs are jobs too: ``<definition id>-<minutes since the epoch>``."""
    if not isinstance(value, str) or not is_dns_label(value):
        return False
    return bool(_JOB_ID.fullmatch(value) or _RUN_ID.fullmatch(value))


def valid_idempotency_key(key: object) -> bool:
    """An ``Idempotency-Key`` header value: 1-255 printable ASCII characters, no spaces."""
    return isinstance(key, str) and bool(_IDEMPOTENCY_KEY.fullmatch(key))


def submit_key(owner: str, idempotency_key: str) -> str:
    """The ``gpulab.io/submit-key`` label value: 40 hex digits of SHA-256 over the owner and
    the key, so that two users' equal keys never meet and the raw key is not a label.
    Select with ``gpulab.io/user=<escaped owner>,gpulab.io/submit-key=<this>``."""
    if not valid_idempotency_key(idempotency_key):
        raise ValueError("an idempotency key is 1-255 printable ASCII characters, no spaces")
    digest = hashlib.sha256(f"{owner}\0{idempotency_key}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:40]
