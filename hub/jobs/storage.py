"""The S3 side of jobs (Ceph RGW): bucket, per-job upload credential, outputs, logs, results.

Layout in the bucket, ``<user>`` being the escaped username (:func:`gpulab.hub.names.escape_username`)::

    <user>/<job-id>/outputs/...        the job's output dir, recursively
    <user>/<job-id>/log.txt            the whole log (stdout and stderr)
    <user>/<job-id>/notebook.ipynb     the executed notebook (notebook jobs)
    <user>/<job-id>/result.json        exit code, times, upload status (written last)

The upload credential is a presigned POST policy signed by the gateway's S3 key with the
conditions ``bucket = <bucket>``, ``starts-with $key <user>/<job-id>/`` and a
``content-length-range``, valid until the job's deadline plus a margin. The pod gets the
policy and its signature, never a key; RGW refuses (403) any key outside the prefix, any
altered policy and any upload after the expiry (tests/jobs/test_storage_ceph.py).

boto3 is blocking: from async code use :class:`AsyncJobStorage` (every call to S3 runs in a worker
thread through ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
from botocore.exceptions import ClientError

from gpulab.wire.runner import rank_prefix

from ..names import escape_username
from .ids import is_job_id

__all__ = [
    "CREDENTIAL_MARGIN_SECONDS",
    "MAX_UPLOAD_BYTES",
    "AsyncJobStorage",
    "JobStorage",
    "OutputFile",
    "StorageConfigError",
    "credential_lifetime",
    "job_prefix",
    "s3_client_config",
]

MAX_UPLOAD_BYTES = 5 * 1024**3  # one POST object: S3's single-request limit (5 GiB)
CREDENTIAL_MARGIN_SECONDS = 3600
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


class StorageConfigError(RuntimeError):
    """S3 is not configured (no endpoint or no key in the environment)."""


@dataclass(frozen=True)
class OutputFile:
    """One object of a job: ``path`` relative to the job's prefix (``outputs/model.pt``,
    ``log.txt``, ``notebook.ipynb``, ``result.json``), ``key`` the full S3 key."""

    key: str
    path: str
    size: int
    modified: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "modified": self.modified.isoformat()}


def s3_client_config() -> botocore.config.Config:
    """The botocore config for RGW: SigV4, path-style, checksums only when required (boto3
    >= 1.36 otherwise breaks PutObject over HTTPS against RGW 16.2)."""
    return botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )


def job_prefix(user: str, job_id: str) -> str:
    """``<escaped user>/<job-id>/``; ``user`` is the raw hub username."""
    if not is_job_id(job_id):
        raise ValueError(f"{job_id!r} is not a job id")
    return f"{escape_username(user)}/{job_id}/"


def credential_lifetime(active_deadline_seconds: int) -> int:
    """How long a job's upload credential must live: its deadline (which counts from the
    Job's start, pending time included), the pod's termination grace and a margin."""
    return int(active_deadline_seconds) + 120 + CREDENTIAL_MARGIN_SECONDS


def _in_run(run: str, name: str) -> str:
    """``name`` in a sweep run's folder (``run-3/log.txt``), or as it is for a job of one run."""
    return f"{run}/{name}" if run else name


def _confined_path(path: str) -> str:
    """A path relative to a job's prefix, or ValueError (no absolute, no ``..``, no NUL)."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise ValueError("not a path inside the job")
    if path.startswith("/") or ".." in path.split("/"):
        raise ValueError("not a path inside the job")
    norm = posixpath.normpath(path)
    if norm in (".", "") or norm.startswith("/") or norm != path.rstrip("/"):
        raise ValueError("not a normalised path inside the job")
    return norm


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


class JobStorage:
    """Blocking S3 operations for jobs, with the gateway's (admin) key. Thread-safe (one
    boto3 client, which is thread-safe)."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str = "default",
        ca_bundle: str | None = None,
        verify: bool = True,
        presign_endpoint_url: str | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
    ) -> None:
        """``ca_bundle``: a PEM file to trust for HTTPS (also handed to jobs in their
        credential); ``presign_endpoint_url``: the S3 URL users' browsers and job pods reach,
        when it differs from the one the gateway uses."""
        self.endpoint_url = endpoint_url.rstrip("/")
        self.public_url = (presign_endpoint_url or endpoint_url).rstrip("/")
        self.bucket = bucket
        self.region = region
        self.ca_bundle = ca_bundle
        self.max_upload_bytes = max_upload_bytes
        self._access_key = access_key
        self._secret_key = secret_key
        verify_arg: bool | str = ca_bundle if ca_bundle else verify
        session = boto3.session.Session()
        self._client = session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=s3_client_config(),
            verify=verify_arg,
        )
        self._presigner = (
            self._client
            if self.public_url == self.endpoint_url
            else session.client(
                "s3",
                endpoint_url=self.public_url,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                region_name=region,
                config=s3_client_config(),
                verify=verify_arg,
            )
        )

    def __repr__(self) -> str:  # never the keys
        return f"JobStorage(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r})"

    @classmethod
    def from_policy(
        cls, s3: Any, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> JobStorage:
        """From the policy's ``s3`` section (:class:`gpulab.hub.policy.S3Config`): endpoint
        from ``endpoint_env`` or ``endpoint``, keys from ``access_key_env``/``secret_key_env``.
        ``$GPULAB_S3_CA_BUNDLE`` names a CA file for HTTPS. Raises StorageConfigError."""
        import os

        env = os.environ if environ is None else environ
        endpoint = s3.endpoint_url(env)
        creds = s3.credentials(env)
        if not endpoint:
            raise StorageConfigError(
                "no S3 endpoint: set s3.endpoint in the policy or $" + str(s3.endpoint_env)
            )
        if creds is None:
            raise StorageConfigError(
                f"no S3 key: set ${s3.access_key_env} and ${s3.secret_key_env}"
            )
        kwargs.setdefault("ca_bundle", env.get("GPULAB_S3_CA_BUNDLE") or None)
        return cls(
            endpoint_url=endpoint,
            access_key=creds[0],
            secret_key=creds[1],
            bucket=s3.bucket,
            region=s3.region,
            **kwargs,
        )

    @property
    def client(self) -> Any:
        """The underlying boto3 S3 client (tests, admin tools)."""
        return self._client

    # ------------------------------------------------------------------ bucket
    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou",):
                raise

    # ------------------------------------------------------------------ upload credential
    def upload_credential(
        self,
        user: str,
        job_id: str,
        expires_in: int,
        *,
        now: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """A presigned POST policy for ``<user>/<job-id>/`` only, valid ``expires_in``
        seconds from ``now`` (default: the current time). JSON-serialisable; it goes into the
        job's upload Secret. To upload, POST multipart/form-data to ``url`` with ``fields``,
        ``key`` (which must start with ``prefix``) and then the ``file`` part last."""
        prefix = job_prefix(user, job_id)
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
        date = now.strftime("%Y%m%d")
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        credential = f"{self._access_key}/{date}/{self.region}/s3/aws4_request"
        expires = now + dt.timedelta(seconds=int(expires_in))
        policy = {
            "expiration": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                {"bucket": self.bucket},
                ["starts-with", "$key", prefix],
                ["content-length-range", 0, self.max_upload_bytes],
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                {"x-amz-credential": credential},
                {"x-amz-date": amz_date},
            ],
        }
        encoded = base64.b64encode(json.dumps(policy, separators=(",", ":")).encode()).decode()
        key = _sign(("AWS4" + self._secret_key).encode("utf-8"), date)
        for part in (self.region, "s3", "aws4_request"):
            key = _sign(key, part)
        signature = hmac.new(key, encoded.encode(), hashlib.sha256).hexdigest()
        out: dict[str, Any] = {
            "version": 1,
            "url": f"{self.public_url}/{self.bucket}",
            "bucket": self.bucket,
            "prefix": prefix,
            "expires": expires.isoformat(),
            "max_bytes": self.max_upload_bytes,
            "fields": {
                "x-amz-algorithm": "AWS4-HMAC-SHA256",
                "x-amz-credential": credential,
                "x-amz-date": amz_date,
                "policy": encoded,
                "x-amz-signature": signature,
            },
        }
        if self.ca_bundle:
            out["ca_bundle"] = Path(self.ca_bundle).read_text()
        return out

    # ------------------------------------------------------------------ reading
    def list_outputs(self, user: str, job_id: str, *, page_size: int = 1000) -> list[OutputFile]:
        """Every object of the job (outputs, log, notebook, result), sorted by path;
        follows pagination (``page_size`` keys per request). Empty when nothing was uploaded."""
        prefix = job_prefix(user, job_id)
        items: list[OutputFile] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
            ):
                for obj in page.get("Contents", []) or []:
                    key = obj["Key"]
                    items.append(
                        OutputFile(
                            key=key,
                            path=key[len(prefix) :],
                            size=int(obj.get("Size", 0)),
                            modified=obj["LastModified"],
                        )
                    )
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return []
            raise
        return sorted(items, key=lambda f: f.path)

    def presigned_get(
        self,
        user: str,
        job_id: str,
        path: str,
        expires_in: int = 300,
        *,
        check_exists: bool = True,
    ) -> str | None:
        """A short-lived GET URL for ``path`` (relative to the job's prefix, e.g.
        ``outputs/model.pt``). ``ValueError`` for a path that leaves the job's prefix; ``None``
        when ``check_exists`` and there is no such object (answer 404)."""
        key = job_prefix(user, job_id) + _confined_path(path)
        if check_exists:
            try:
                self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    return None
                raise
        filename = posixpath.basename(key)
        return self._presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": _content_disposition(filename),
            },
            ExpiresIn=int(expires_in),
        )

    def _get(self, key: str, range_: str | None = None) -> bytes | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if range_:
            kwargs["Range"] = range_
        try:
            response = self._client.get_object(**kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND:
                return None
            if code in ("InvalidRange", "416"):
                return b""
            raise
        with response["Body"] as body:
            return body.read()

    def read_log(
        self,
        user: str,
        job_id: str,
        offset: int = 0,
        limit: int | None = None,
        rank: int = 0,
        run: str = "",
    ) -> bytes | None:
        """The archived log from byte ``offset`` (up to ``limit`` bytes); ``None`` when there
        is no archived log, ``b''`` when ``offset`` is at or past its end. ``rank``: a
        multi-node job's rank (under ``rank-K/``); ``run``: a sweep run's (``run-<index>``),
        kept in that folder of the job's prefix. A job is one or the other, never both."""
        if offset < 0 or (limit is not None and limit <= 0):
            raise ValueError("offset must be >= 0 and limit > 0")
        key = job_prefix(user, job_id) + rank_prefix(rank) + _in_run(run, "log.txt")
        if offset == 0 and limit is None:
            return self._get(key)
        end = "" if limit is None else str(offset + limit - 1)
        return self._get(key, f"bytes={offset}-{end}")

    def result(self, user: str, job_id: str, run: str = "") -> dict[str, Any] | None:
        """The job's ``result.json`` (written by the runner last; a sweep run's in its
        ``run`` folder), or ``None``."""
        raw = self._get(job_prefix(user, job_id) + _in_run(run, "result.json"))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def delete_job(self, user: str, job_id: str) -> int:
        """Delete every object of a job; returns how many."""
        keys = [f.key for f in self.list_outputs(user, job_id)]
        for i in range(0, len(keys), 1000):
            self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )
        return len(keys)


class AsyncJobStorage:
    """The same API as :class:`JobStorage` for the event loop: each call that talks to S3 runs
    in a thread."""

    def __init__(self, storage: JobStorage) -> None:
        self.sync = storage

    async def ensure_bucket(self) -> None:
        await asyncio.to_thread(self.sync.ensure_bucket)

    async def upload_credential(self, user: str, job_id: str, expires_in: int) -> dict[str, Any]:
        # No I/O: a policy signed with HMAC-SHA256, a fraction of a millisecond. A worker
        # thread would cost more than the work (a hop, and the GIL back and forth per submit).
        return self.sync.upload_credential(user, job_id, expires_in)

    async def list_outputs(self, user: str, job_id: str) -> list[OutputFile]:
        return await asyncio.to_thread(self.sync.list_outputs, user, job_id)

    async def presigned_get(
        self, user: str, job_id: str, path: str, expires_in: int = 300, *, check_exists: bool = True
    ) -> str | None:
        return await asyncio.to_thread(
            self.sync.presigned_get, user, job_id, path, expires_in, check_exists=check_exists
        )

    async def read_log(
        self,
        user: str,
        job_id: str,
        offset: int = 0,
        limit: int | None = None,
        rank: int = 0,
        run: str = "",
    ) -> bytes | None:
        return await asyncio.to_thread(self.sync.read_log, user, job_id, offset, limit, rank, run)

    async def result(self, user: str, job_id: str, run: str = "") -> dict[str, Any] | None:
        return await asyncio.to_thread(self.sync.result, user, job_id, run)

    async def delete_job(self, user: str, job_id: str) -> int:
        return await asyncio.to_thread(self.sync.delete_job, user, job_id)


def _code(exc: ClientError) -> str:
    """The S3 error code (``NoSuchKey``), or the HTTP status when there is none (HEAD)."""
    response = getattr(exc, "response", {}) or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    return code or str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", ""))


def _content_disposition(filename: str) -> str:
    from urllib.parse import quote

    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
