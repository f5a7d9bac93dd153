"""The models of the policy's sections (groups, profiles, GPU types, storage, catalogue, S3):
pydantic v2, immutable, and strict about keys (``extra='forbid'``).

Every duration field is stored in seconds under ``<key>_seconds`` and written in YAML as
``<key>`` (``idle.timeout: 1h`` -> ``IdleRules.timeout_seconds == 3600``). Sizes stay strings
(Kubernetes quantities, validated). Each model checks only its own fields; rules between
sections are :mod:`.crosscheck`'s, and the whole document is :class:`.document.Policy`.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..names import is_dns_label, is_dns_subdomain
from .images import parse_image_ref
from .quantities import cpu_millicores, parse_duration, quantity_bytes

__all__ = [
    "CatalogueConfig",
    "CpuQuota",
    "CpuRange",
    "DatasetMount",
    "GpuLimits",
    "GpuType",
    "GroupPolicy",
    "HarborSource",
    "HomeStorage",
    "IdleRules",
    "ImageRules",
    "JobRules",
    "KernelRules",
    "MemoryQuota",
    "MemoryRange",
    "PlatformConfig",
    "ProfilePolicy",
    "S3Config",
    "StaticImage",
    "StorageConfig",
    "Toleration",
]

GPU_SHM_DEFAULT = "1Gi"
CPU_SHM_DEFAULT = "64Mi"


# ----------------------------------------------------------------------------- field types


def _duration(value: Any) -> int:
    return parse_duration(value)


def _quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("not a Kubernetes quantity such as 512Mi or 8Gi")
    quantity_bytes(value)  # raises ValueError with what is accepted
    return value.strip() if isinstance(value, str) else str(value)


def _cpu(value: Any) -> float:
    return cpu_millicores(value) / 1000


def _env_name(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("not an environment variable name (letters, digits and _)")
    return value


Duration = Annotated[int, BeforeValidator(_duration)]
"""Seconds; YAML accepts ``90s``, ``30m``, ``24h``, ``7d``, ``1h30m`` or an integer."""
Quantity = Annotated[str, BeforeValidator(_quantity)]
"""A Kubernetes quantity string (``8Gi``), validated, kept as written."""
Cpu = Annotated[float, BeforeValidator(_cpu)]
"""CPUs as a float; YAML accepts ``2``, ``0.5`` or ``500m``."""
EnvName = Annotated[str, BeforeValidator(_env_name)]

_PROJECT = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_RESERVED_MOUNTS = ("/dev", "/proc", "/sys")


def check_mount_path(value: str) -> str:
    """An absolute, normalised container path that is not a system path (``/dev/shm`` is the
    memory-backed shared memory gpulab mounts itself)."""
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    if posixpath.normpath(value) != value or "//" in value:
        raise ValueError(f"must be a normalised path (write {posixpath.normpath(value)!r})")
    if value == "/":
        raise ValueError("cannot mount over /")
    if value == "/dev/shm" or value.startswith("/dev/shm/"):
        raise ValueError("/dev/shm is reserved (gpulab mounts memory-backed shared memory there)")
    for reserved in _RESERVED_MOUNTS:
        if value == reserved or value.startswith(reserved + "/"):
            raise ValueError(f"{reserved} is reserved (a system path)")
    return value


class StrictModel(BaseModel):
    """Frozen, and any unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)


# ----------------------------------------------------------------------------- groups


class ImageRules(StrictModel):
    """Images a group may use: a Harbor project match or a glob on the full reference."""

    projects: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @field_validator("projects")
    @classmethod
    def _projects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for p in value:
            if not _PROJECT.fullmatch(p):
                raise ValueError(
                    f"{p!r} is not a Harbor project name (lowercase letters, digits, . _ -)"
                )
        return value


class GpuLimits(StrictModel):
    types: tuple[str, ...] = ()
    per_server: int = Field(0, ge=0, le=64)
    per_job: int = Field(0, ge=0, le=64)
    quota_user: int = Field(0, ge=0)
    quota_group: int = Field(0, ge=0)
    # Sharing between groups (with Kueue; docs/scheduling.md): how many of this group's
    # quota GPUs other groups' preemptible jobs may use while they are idle (reclaimed when
    # the group needs them), and how many GPUs this group's preemptible jobs may borrow from
    # other groups' idle ones. 0: nothing lent, nothing borrowed.
    lend_idle: int = Field(0, ge=0)
    borrow_max: int = Field(0, ge=0)


def _positive_cpu(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise ValueError("must be more than 0 CPUs (leave the key out for the default)")
    return value


def _positive_size(value: str | None) -> str | None:
    if value is not None and quantity_bytes(value) <= 0:
        raise ValueError("must be more than 0 bytes (leave the key out for the default)")
    return value


class JobRules(StrictModel):
    max_runtime_seconds: Duration = Field(86400, alias="max_runtime", ge=60)
    ttl_after_finished_seconds: Duration = Field(7 * 86400, alias="ttl_after_finished")
    max_retries: int = Field(3, ge=0, le=100)
    max_concurrent: int = Field(10, ge=0)
    # Where Kueue queues jobs: the most of a user's jobs that may wait in the queue at once
    # (a submit past it is refused: queueing cannot help).
    max_queued: int = Field(20, ge=0)
    # The most nodes (pods) one multi-node job may span; 1: single-node jobs only.
    max_nodes: int = Field(1, ge=1, le=64)
    # Saved job definitions (schedules among them) a user may keep at once.
    max_definitions: int = Field(20, ge=0)
    gpu_idle_report_after_seconds: Duration = Field(3600, alias="gpu_idle_report_after")
    kill_gpu_idle: bool = False
    # Per job; None: derived from the group's profiles (hub/policy/caps.py).
    max_cpu: Cpu | None = None
    max_memory: Quantity | None = None

    _check_cpu = field_validator("max_cpu")(_positive_cpu)
    _check_memory = field_validator("max_memory")(_positive_size)


class CpuQuota(StrictModel):
    """CPUs everyone charged to the group may hold at once (guarantees of servers and jobs
    together); None: no group CPU quota."""

    quota_group: Cpu | None = None

    _check_quota = field_validator("quota_group")(_positive_cpu)


class MemoryQuota(StrictModel):
    """Memory everyone charged to the group may hold at once, as :class:`CpuQuota`."""

    quota_group: Quantity | None = None

    _check_quota = field_validator("quota_group")(_positive_size)


class IdleRules(StrictModel):
    """Culling rules for notebook servers. 0 turns a duration rule off."""

    timeout_seconds: Duration = Field(3600, alias="timeout")
    max_age_seconds: Duration = Field(0, alias="max_age")
    gpu_threshold: int = Field(10, ge=0, le=100)
    gpu_idle_after_seconds: Duration = Field(1800, alias="gpu_idle_after")
    warn_before_seconds: Duration = Field(600, alias="warn_before")
    keep_max_count: int = Field(2, ge=0)
    keep_max_total_seconds: Duration = Field(8 * 3600, alias="keep_max_total")
    exempt_users: tuple[str, ...] = ()


class KernelRules(StrictModel):
    """What to do with a kernel that holds GPU memory but computes nothing. 0 = off."""

    gpu_idle_after_seconds: Duration = Field(7200, alias="gpu_idle_after")
    action: Literal["shutdown", "restart", "warn"] = "shutdown"


def _check_contact(value: str) -> str:
    """A contact is shown to researchers in one sentence ("ask <contact>"): one short line."""
    value = value.strip()
    if len(value) > 200:
        raise ValueError("at most 200 characters (a name, an e-mail address or a URL)")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be one line without control characters")
    return value


class PlatformConfig(StrictModel):
    """Settings of the whole platform that pages show to researchers."""

    # Whom researchers ask for access (GPUs, groups, more quota), e.g.
    # "the ML platform team (ml-platform@example.org)"; a group's own contact wins.
    contact: str = ""

    _check_contact = field_validator("contact")(_check_contact)


class GroupPolicy(StrictModel):
    name: str = ""  # filled in from the key under `groups:`
    contact: str = ""  # whom this group's members ask; empty: platform.contact
    images: ImageRules = ImageRules()
    profiles: tuple[str, ...] = ()
    gpu: GpuLimits = GpuLimits()
    cpu: CpuQuota = CpuQuota()
    memory: MemoryQuota = MemoryQuota()
    jobs: JobRules = JobRules()
    idle: IdleRules = IdleRules()
    kernels: KernelRules = KernelRules()
    named_servers: int = Field(0, ge=0, le=100)
    wait_for_gpus_seconds: Duration = Field(600, alias="wait_for_gpus")

    _check_contact = field_validator("contact")(_check_contact)


# ----------------------------------------------------------------------------- profiles


class CpuRange(StrictModel):
    guarantee: Cpu | None = None
    limit: Cpu | None = None

    @model_validator(mode="after")
    def _order(self) -> CpuRange:
        if self.guarantee is not None and self.limit is not None and self.guarantee > self.limit:
            raise ValueError(f"guarantee {self.guarantee:g} exceeds limit {self.limit:g}")
        return self


class MemoryRange(StrictModel):
    guarantee: Quantity | None = None
    limit: Quantity | None = None

    @model_validator(mode="after")
    def _order(self) -> MemoryRange:
        if (
            self.guarantee is not None
            and self.limit is not None
            and quantity_bytes(self.guarantee) > quantity_bytes(self.limit)
        ):
            raise ValueError(f"guarantee {self.guarantee!r} exceeds limit {self.limit!r}")
        return self


class ProfilePolicy(StrictModel):
    name: str = ""  # filled in from the key under `profiles:`
    display_name: str = ""  # defaults to the name
    description: str = ""
    gpu_type: str | None = None  # None = CPU-only profile
    gpus: tuple[int, ...] = ()  # GPU counts offered (GPU profiles); capped per group
    cpu: CpuRange = CpuRange()
    memory: MemoryRange = MemoryRange()
    shm_size: Quantity | None = None  # defaults: 1Gi on GPU profiles, 64Mi on CPU profiles
    default: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.gpu_type is not None

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for n in value:
            if n < 1:
                raise ValueError(f"{n} is not a GPU count (each choice must be 1 or more)")
        if len(set(value)) != len(value):
            raise ValueError("each GPU count may be listed once")
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _defaults(self) -> ProfilePolicy:
        if self.gpu_type is not None and not self.gpus:
            raise ValueError(
                f"gpu_type is {self.gpu_type!r} but gpus is empty; list the GPU counts "
                "offered, e.g. gpus: [1, 2]"
            )
        if self.gpu_type is None and self.gpus:
            raise ValueError(
                f"gpus is {list(self.gpus)} but gpu_type is not set; a CPU-only profile "
                "offers no GPUs"
            )
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if self.shm_size is None:
            default = GPU_SHM_DEFAULT if self.gpu_type else CPU_SHM_DEFAULT
            object.__setattr__(self, "shm_size", default)
        return self

    def capped(self, per_server: int) -> ProfilePolicy | None:
        """This profile with its GPU choices capped at ``per_server`` (and > 0); a CPU profile
        is returned as is; ``None`` when no GPU choice remains."""
        if self.gpu_type is None:
            return self
        gpus = tuple(n for n in self.gpus if 0 < n <= per_server)
        if not gpus:
            return None
        return self if gpus == self.gpus else self.model_copy(update={"gpus": gpus})


# ----------------------------------------------------------------------------- GPU types


class Toleration(StrictModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, alias="tolerationSeconds")

    def to_k8s(self) -> dict[str, Any]:
        """The pod-spec form (camelCase keys, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def extended_resource_problem(value: str) -> str | None:
    """Why ``value`` is not a Kubernetes extended resource name, or None: a DNS-subdomain
    prefix outside ``kubernetes.io``, ``/``, and a name of at most 63 letters, digits, ``-``,
    ``_`` and ``.`` that starts and ends with a letter or digit (``nvidia.com/gpu``,
    ``nvidia.com/mig-1g.10gb``, ``nvidia.com/gpu.shared``)."""
    example = "such as nvidia.com/gpu, nvidia.com/mig-1g.10gb or nvidia.com/gpu.shared"
    domain, sep, name = value.partition("/")
    if not sep:
        return f"has no domain prefix; an extended resource name is domain/name, {example}"
    if not is_dns_subdomain(domain):
        return (
            f"{domain!r} is not a DNS subdomain (lowercase letters, digits, '-' and '.'); an "
            f"extended resource name is domain/name, {example}"
        )
    if "kubernetes.io/" in value:  # Kubernetes' own rule: such names are native resources
        return "the kubernetes.io domain is Kubernetes' own, not an extended resource"
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"{name!r} is not a resource name (at most 63 letters, digits, '-', '_' or '.', "
            f"starting and ending with a letter or digit), {example}"
        )
    return None


class GpuType(StrictModel):
    name: str = ""  # filled in from the key under `gpu_types:`
    resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    max_per_node: int = Field(8, ge=1, le=64)

    # A GPU type that is a slice of a GPU (MIG, time-sliced): how the spawn page names one,
    # e.g. "1/7 A100, 10 GB". Empty: a whole GPU (the type's name is shown).
    label: str = Field("", max_length=80)

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        problem = extended_resource_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def k8s_tolerations(self) -> list[dict[str, Any]]:
        return [t.to_k8s() for t in self.tolerations]


# ----------------------------------------------------------------------------- storage


class HomeStorage(StrictModel):
    storage_class: str | None = None  # None = the cluster's default storage class
    size: Quantity = "10Gi"
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"] = "ReadWriteMany"
    mount_path: str = "/home/jovyan"
    claim_name_template: str = "home-{username}"

    @field_validator("mount_path")
    @classmethod
    def _mount(cls, value: str) -> str:
        return check_mount_path(value)

    @field_validator("claim_name_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{username}" not in value:
            raise ValueError("must contain {username} (the escaped username)")
        try:
            sample = value.format(username="user")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("may use only the placeholder {username}") from exc
        if not is_dns_label(sample):
            raise ValueError(f"renders to {sample!r}, which is not a DNS label")
        return value

    def claim_name(self, escaped_username: str) -> str:
        """The home PVC name for an already escaped username (see :mod:`gpulab.hub.names`)."""
        return self.claim_name_template.format(username=escaped_username)


class DatasetMount(StrictModel):
    name: str
    claim: str
    mount_path: str
    read_only: bool = True
    sub_path: str | None = None

    @field_validator("mount_path")
    @classmethod
    def _mount(cls, value: str) -> str:
        return check_mount_path(value)

    @field_validator("name", "claim")
    @classmethod
    def _label(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(
                "not a DNS label (lowercase letters, digits and '-', at most 63 characters, "
                "starting and ending with a letter or digit)"
            )
        return value


class StorageConfig(StrictModel):
    home: HomeStorage = HomeStorage()
    datasets: tuple[DatasetMount, ...] = ()
    on_user_delete: Literal["keep", "snapshot"] = "keep"
    snapshot_class: str | None = None


# ----------------------------------------------------------------------------- catalogue


def _check_url(value: str | None) -> str | None:
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL such as https://harbor.example.org")
    return value.rstrip("/")


class HarborSource(StrictModel):
    url: str | None = None
    projects: tuple[str, ...] = ()  # empty = every project the robot account can see
    username_env: EnvName = "HARBOR_USERNAME"
    password_env: EnvName = "HARBOR_PASSWORD"
    pull_secret: str | None = None
    verify_tls: bool = True
    timeout_seconds: Duration = Field(10, alias="timeout", ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @property
    def host(self) -> str | None:
        """The registry host images are pulled from (``harbor.example.org[:port]``)."""
        return urlsplit(self.url).netloc if self.url else None

    def credentials(self, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """(username, password) from the environment, or None when either is unset."""
        env = os.environ if environ is None else environ
        user, password = env.get(self.username_env), env.get(self.password_env)
        return (user, password) if user and password else None


class StaticImage(StrictModel):
    image: str
    display_name: str = ""
    description: str = ""
    framework: str | None = None
    cuda: str | None = None
    gpu: bool = False
    recommended: bool = False  # listed first on the spawn page
    # readiness as the admin states it (docs/catalogue.md): false = the image lacks it
    notebook: bool = True  # has gpulab's Jupyter server
    runner: bool = True  # has gpulab-job-runner

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        parse_image_ref(value)
        return value

    @field_validator("cuda", mode="before")
    @classmethod
    def _cuda(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


class CatalogueConfig(StrictModel):
    source: Literal["static", "harbor"] = "static"
    refresh_seconds: Duration = Field(300, alias="refresh", ge=1)
    harbor: HarborSource | None = None
    static: tuple[StaticImage, ...] = ()

    def registries(self) -> frozenset[str]:
        """Registry hosts of the catalogue (the Harbor host, or the static images' hosts)."""
        if self.source == "harbor":
            return frozenset({self.harbor.host} if self.harbor and self.harbor.host else ())
        return frozenset(parse_image_ref(i.image).registry for i in self.static)


# ----------------------------------------------------------------------------- S3


class S3Config(StrictModel):
    endpoint: str | None = None
    endpoint_env: EnvName | None = "GPULAB_S3_ENDPOINT"  # wins over `endpoint` when set
    bucket: str = "gpulab-outputs"
    region: str = "default"
    access_key_env: EnvName = "GPULAB_S3_ACCESS_KEY"
    secret_key_env: EnvName = "GPULAB_S3_SECRET_KEY"
    presign_expiry_seconds: Duration = Field(900, alias="presign_expiry", ge=1, le=7 * 86400)

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not (3 <= len(value) <= 63 and is_dns_subdomain(value)):
            raise ValueError("not an S3 bucket name (3-63 lowercase letters, digits, '-', '.')")
        return value

    def endpoint_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if environ is None else environ
        if self.endpoint_env and env.get(self.endpoint_env):
            return env[self.endpoint_env]
        return self.endpoint

    def credentials(self, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """(access key, secret key) from the environment, or None when either is unset."""
        env = os.environ if environ is None else environ
        key, secret = env.get(self.access_key_env), env.get(self.secret_key_env)
        return (key, secret) if key and secret else None
