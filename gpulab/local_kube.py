"""The local platform's credentials for kubesim, and the launcher's calls to it.

:class:`LocalKube` writes kubesim's token file and one kubeconfig per identity
(:mod:`gpulab.kube_identities`) under ``<state dir>/kube/`` (the folder 0700, every file
0600: pods run as another uid than the launcher's and cannot read them), calls kubesim as the
launcher (a cluster admin) over HTTPS with kubesim's CA, and applies the namespace and RBAC
objects of ``helm-values/manifests`` at every start.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gpulab import kube_identities
from gpulab.kube_identities import ADMIN, IDENTITIES, Identity

if TYPE_CHECKING:
    import httpx


class LocalKubeError(RuntimeError):
    pass


class LocalKube:
    def __init__(self, state_dir: Path, admin_kubeconfig: Path) -> None:
        self.state_dir = state_dir
        # Written by kubesim itself (its first system:masters token, like an admin.conf).
        self.admin_kubeconfig = admin_kubeconfig
        self.folder = state_dir / "kube"
        self.url = ""
        self.tokens: dict[str, str] = {}

    @property
    def ca(self) -> Path:
        """kubesim's serving certificate (its own CA), kept in its data folder."""
        return self.state_dir / "kubesim" / "tls" / "apiserver.crt"

    def write_token_file(self) -> Path:
        """kubesim's token file, one token per identity, kept across restarts so that the
        kubeconfigs handed out stay valid."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        path = self.folder / "tokens.csv"
        known = kube_identities.read_tokens(path.read_text()) if path.exists() else {}
        self.tokens = kube_identities.complete_tokens(known)
        write_private(path, kube_identities.token_file_text(self.tokens))
        return path

    def kubeconfig_of(self, identity: Identity) -> Path:
        if identity == ADMIN:
            return self.admin_kubeconfig
        return self.folder / f"{identity.key}.kubeconfig"

    def write_kubeconfigs(self) -> None:
        """Every identity's kubeconfig: kubesim's admin one (server, CA) with its token."""
        admin = yaml.safe_load(self.admin_kubeconfig.read_text())
        for identity in IDENTITIES:
            if identity != ADMIN:
                config = kube_identities.kubeconfig_for(admin, self.tokens[identity.key])
                write_private(self.kubeconfig_of(identity), yaml.safe_dump(config, sort_keys=False))

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def headers(self, identity: Identity = ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[identity.key]}"}

    def client(self, identity: Identity = ADMIN) -> httpx.Client:
        """An ``httpx.Client`` on kubesim as ``identity``, verifying its certificate."""
        import httpx

        return httpx.Client(
            base_url=self.url,
            headers=self.headers(identity),
            verify=self.ssl_context(),
            timeout=30,
        )

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One call as the launcher (a cluster admin); HTTPError on a failure status."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        for key, value in self.headers().items():
            request.add_header(key, value)
        with urllib.request.urlopen(request, timeout=30, context=self.ssl_context()) as response:
            return json.loads(response.read() or b"null")

    def apply(self, obj: dict[str, Any]) -> None:
        """Create ``obj``, or bring the stored one in line with it (a restart after a manifest
        changed): a JSON merge patch replaces lists (rules, subjects) whole."""
        from gpulab.kubesim.store import RESOURCES

        group = obj["apiVersion"].rpartition("/")[0]
        plural = next(
            rt.plural for rt in RESOURCES.values() if (rt.group, rt.kind) == (group, obj["kind"])
        )
        prefix = f"/apis/{obj['apiVersion']}" if group else "/api/v1"
        namespace = obj["metadata"].get("namespace")
        where = f"/namespaces/{namespace}" if namespace else ""
        collection = f"{prefix}{where}/{plural}"
        try:
            self.request("POST", collection, obj)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise
            self.request(
                "PATCH",
                f"{collection}/{obj['metadata']['name']}",
                obj,
                content_type="application/merge-patch+json",
            )

    def apply_access(self) -> None:
        """The namespace's labels (Pod Security), the identities' ServiceAccounts and the
        RBAC of helm-values/manifests, as :func:`gpulab.kube_identities.local_objects` renders
        them."""
        folder = kube_identities.manifests_dir()
        if folder is None:
            raise LocalKubeError(
                "helm-values/manifests not found (neither in a checkout nor in "
                f"{sys.prefix}/share/gpulab/manifests): the platform applies its RBAC from them"
            )
        texts = [(folder / name).read_text() for name in kube_identities.MANIFEST_FILES]
        for obj in kube_identities.local_objects(texts):
            self.apply(obj)


def write_private(path: Path, text: str) -> None:
    """Write a credential owner-only, never readable by others even for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


__all__ = ["LocalKube", "LocalKubeError", "write_private"]
