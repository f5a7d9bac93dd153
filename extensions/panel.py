"""The notebook panel: ``from gpulab import jobs; jobs.panel()``.

Runs in the kernel and talks to the jobs gateway with :class:`GatewayClient` (the server's
token from the kernel's environment) and to the culler for the cull warning. Network calls run
in worker threads so the notebook stays responsive; widget state lives in :class:`JobsPanel`.

Pure helpers (:func:`build_spec`, :func:`parse_parameters`, :func:`current_notebook`,
:func:`output_destination`) hold the logic and are unit-tested without a display.
"""

from __future__ import annotations

import html
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from gpulab.wire.jobs import CANCELLABLE_STATES, JobState

from .client import ClientConfig, ConfigError, GatewayClient, GatewayError

__all__ = [
    "JobsPanel",
    "PanelError",
    "build_spec",
    "current_notebook",
    "output_destination",
    "parse_parameters",
]

STATE_COLOURS: dict[JobState, str] = {
    "Queued": "#5c6bc0",
    "Pending": "#b08900",
    "Running": "#2f6fdf",
    "Succeeded": "#2e8b3e",
    "Failed": "#c62828",
    "Cancelled": "#777777",
}


class PanelError(ValueError):
    """Something in the form is wrong; the message says what."""


# ----------------------------------------------------------------------------- pure helpers


def parse_value(text: str) -> Any:
    """``10`` → 10, ``0.1`` → 0.1, ``true`` → True, ``[1, 2]`` → [1, 2], else the string."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_parameters(rows: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Parameter rows (key, value text) → the spec's ``parameters``; empty rows are skipped."""
    out: dict[str, Any] = {}
    for key, value in rows:
        key = key.strip()
        if not key and not value.strip():
            continue
        if not key.isidentifier():
            raise PanelError(f"parameter name {key!r} is not a Python identifier")
        if key in out:
            raise PanelError(f"parameter {key!r} is given twice")
        out[key] = parse_value(value)
    return out


def _relative_to_home(path: str, home: str) -> str:
    p = path.strip()
    if os.path.isabs(p) and home:
        try:
            return Path(p).resolve().relative_to(Path(home).resolve()).as_posix()
        except ValueError:
            raise PanelError(f"{path!r} is not inside your home ({home})") from None
    return PurePosixPath(p).as_posix()


def current_notebook(
    env: Mapping[str, str] | None = None, user_ns: Mapping[str, Any] | None = None
) -> str:
    """The running notebook's path relative to the home, or "" if unknown
    (``JPY_SESSION_NAME`` from jupyter_server, else IPython's ``__session__``)."""
    env = os.environ if env is None else env
    raw = env.get("JPY_SESSION_NAME") or str((user_ns or {}).get("__session__") or "")
    if not raw.endswith(".ipynb"):
        return ""
    try:
        return _relative_to_home(raw, env.get("HOME", ""))
    except PanelError:
        return ""


def build_spec(
    *,
    kind: str,
    name: str,
    path: str = "",
    args: str = "",
    gpus: int = 0,
    image: str = "",
    parameters: Iterable[tuple[str, str]] = (),
    home: str = "",
) -> dict[str, Any]:
    """The job spec the panel submits. ``kind``: ``notebook`` or ``script``; ``args``: one
    argument per line (scripts); ``parameters``: (key, value) rows (notebooks)."""
    name = name.strip()
    if not name:
        raise PanelError("give the job a name (lowercase letters, digits and '-')")
    if not path.strip():
        raise PanelError(f"give the {kind}'s path, relative to your home")
    rel = _relative_to_home(path, home)
    spec: dict[str, Any] = {"name": name, "gpus": int(gpus)}
    if image.strip():
        spec["image"] = image.strip()
    if kind == "notebook":
        if not rel.endswith(".ipynb"):
            raise PanelError(f"{path!r} is not a notebook (.ipynb)")
        spec["notebook"] = rel
        params = parse_parameters(parameters)
        if params:
            spec["parameters"] = params
    elif kind == "script":
        argv = [line.strip() for line in args.splitlines() if line.strip()]
        program = "python" if rel.endswith(".py") else "bash" if rel.endswith(".sh") else None
        spec["command"] = ([program] if program else []) + [rel, *argv]
        if program is None and not rel.startswith(("./", "/")):
            spec["command"][0] = "./" + rel
    else:
        raise PanelError(f"unknown kind {kind!r}: notebook or script")
    return spec


def output_destination(home: str | os.PathLike[str], job_id: str, path: str) -> Path:
    """Where an output file goes: ``~/outputs/<job>/<path>``, never outside that folder."""
    base = (Path(home) / "outputs" / job_id).resolve()
    dest = (base / path).resolve()
    if not dest.is_relative_to(base) or dest == base:
        raise PanelError(f"output path {path!r} leaves outputs/{job_id}")
    return dest


def jobs_table_html(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "<p><i>No jobs yet.</i></p>"
    rows = []
    for j in jobs:
        colour = STATE_COLOURS.get(str(j.get("state")), "#888")
        state = html.escape(str(j.get("state", "?")))
        # a queued job's place and what it waits for; a preempted job's requeues
        waits = j.get("message") if j.get("state") == "Queued" or j.get("preemptions") else ""
        if waits:
            state += f'<br><small class="gpulab-queue">{html.escape(str(waits))}</small>'
        rows.append(
            "<tr>"
            f"<td>{html.escape(str(j.get('name', '')))}</td>"
            f"<td><code>{html.escape(str(j.get('id', '')))}</code></td>"
            f'<td><span style="background:{colour};color:#fff;padding:0 6px;'
            f'border-radius:8px">{state}</span></td>'
            f"<td>{html.escape(str(j.get('gpus', '')))}</td>"
            f"<td>{html.escape(str(j.get('created') or ''))}</td>"
            "</tr>"
        )
    return (
        '<table style="width:100%;border-collapse:collapse"><tr><th align=left>Name</th>'
        "<th align=left>Id</th><th align=left>State</th><th align=left>GPUs</th>"
        "<th align=left>Created</th></tr>" + "".join(rows) + "</table>"
    )


def cull_warning_html(status: Mapping[str, Any] | None) -> str:
    if not status or status.get("state") != "warned":
        return ""
    return (
        '<div style="background:#fff4d6;border:1px solid #e6c35c;padding:6px;border-radius:6px">'
        f"⚠ This server will be stopped at {html.escape(str(status.get('cull_at')))}: "
        f"{html.escape(str(status.get('reason', 'idle')))}. "
        f"Keeps left: {html.escape(str(status.get('keeps_left', 0)))}.</div>"
    )


# ----------------------------------------------------------------------------- culler


class CullerClient:
    """Sync calls to the culler's ``/servers/me`` for the panel (server token from env)."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout: float = 15.0) -> None:
        env = os.environ if env is None else env
        self.base = env.get("GPULAB_CULLER_URL", "").rstrip("/")
        self.server = env.get("JUPYTERHUB_SERVER_NAME", "")
        self.token = env.get("JUPYTERHUB_API_TOKEN", "") or env.get("GPULAB_TOKEN", "")
        self.timeout = timeout

    @property
    def configured(self) -> bool:
        return bool(self.base and self.token)

    def _call(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        r = httpx.request(
            method,
            f"{self.base}/api/v1/{path}",
            params={"server": self.server},
            headers={"Authorization": f"token {self.token}"},
            timeout=self.timeout,
        )
        try:
            body = r.json()
        except ValueError:
            body = {"error": r.text[:200]}
        return r.status_code, body if isinstance(body, dict) else {}

    def status(self) -> dict[str, Any] | None:
        if not self.configured:
            return None
        code, body = self._call("GET", "servers/me")
        return body if code == 200 else None

    def keep(self) -> tuple[bool, str]:
        if not self.configured:
            return False, "no culler is configured for this server"
        code, body = self._call("POST", "servers/me/keep")
        return code == 200, str(body.get("message") or body.get("error") or code)


# ----------------------------------------------------------------------------- the panel


class JobsPanel:
    """The widget tree and its callbacks. ``widget`` is what ``jobs.panel()`` returns."""

    def __init__(
        self,
        client_factory: Callable[[], GatewayClient] | None = None,
        culler: CullerClient | None = None,
        env: Mapping[str, str] | None = None,
        user_ns: Mapping[str, Any] | None = None,
        auto_refresh: float = 5.0,
    ) -> None:
        import ipywidgets as w

        self.env = dict(os.environ if env is None else env)
        self.home = self.env.get("HOME", str(Path.home()))
        self._client_factory = client_factory or (lambda: GatewayClient(ClientConfig.discover()))
        self.culler = culler or CullerClient(self.env)
        self.auto_refresh = auto_refresh
        self.jobs: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._log_thread: threading.Thread | None = None
        self._log_job: str | None = None

        # submit form
        self.kind = w.ToggleButtons(options=["notebook", "script"], value="notebook")
        self.name = w.Text(description="Name", placeholder="train-resnet")
        self.path = w.Text(
            description="Path", value=current_notebook(self.env, user_ns), placeholder="work/x"
        )
        self.args = w.Textarea(description="Args", placeholder="one per line", rows=2)
        self.gpus = w.BoundedIntText(
            description="GPUs", min=0, max=64, value=_int(self.env.get("GPULAB_GPUS"))
        )
        self.image = w.Text(description="Image", value=self.env.get("GPULAB_IMAGE", ""))
        self.param_rows = w.VBox([])
        self.add_param = w.Button(description="+ parameter", layout=w.Layout(width="auto"))
        self.submit_button = w.Button(description="Submit", button_style="primary")
        self.submit_result = w.HTML()
        self.add_param.on_click(lambda _b: self.add_parameter_row())
        self.submit_button.on_click(lambda _b: self._in_thread(self.submit))
        self.kind.observe(lambda _c: self._kind_changed(), names="value")
        submit_box = w.VBox(
            [
                w.HTML("<b>Submit a job</b>"),
                self.kind,
                self.name,
                self.path,
                self.args,
                self.gpus,
                self.image,
                w.HTML("Parameters (notebooks)"),
                self.param_rows,
                self.add_param,
                self.submit_button,
                self.submit_result,
            ]
        )

        # jobs list, log, cancel, outputs
        self.table = w.HTML()
        self.job_select = w.Dropdown(description="Job", options=[])
        self.refresh_button = w.Button(description="Refresh")
        self.logs_button = w.Button(description="Follow log")
        self.cancel_button = w.Button(description="Cancel", button_style="danger")
        self.download_button = w.Button(description="Download outputs")
        self.log_view = w.Textarea(
            layout=w.Layout(width="100%", height="16em"), disabled=True, placeholder="log"
        )
        self.status_line = w.HTML()
        self.refresh_button.on_click(lambda _b: self._in_thread(self.refresh))
        self.logs_button.on_click(lambda _b: self.follow_log(self.job_select.value))
        self.job_select.observe(lambda _change: self._sync_cancel(), names="value")
        self.cancel_button.on_click(lambda _b: self._in_thread(self.cancel))
        self.download_button.on_click(lambda _b: self._in_thread(self.download))
        jobs_box = w.VBox(
            [
                w.HBox([w.HTML("<b>My jobs</b>"), self.refresh_button]),
                self.table,
                w.HBox(
                    [self.job_select, self.logs_button, self.cancel_button, self.download_button]
                ),
                self.status_line,
                self.log_view,
            ]
        )

        # cull warning
        self.cull_html = w.HTML()
        self.keep_button = w.Button(description="Keep my server", layout={"display": "none"})
        self.keep_button.on_click(lambda _b: self._in_thread(self.keep))
        cull_box = w.HBox([self.cull_html, self.keep_button])

        self.widget = w.VBox([cull_box, w.HBox([submit_box, jobs_box])])
        self._kind_changed()

    # ------------------------------------------------------------------ form state
    def _kind_changed(self) -> None:
        notebook = self.kind.value == "notebook"
        self.args.layout.display = "none" if notebook else None
        self.param_rows.layout.display = None if notebook else "none"
        self.add_param.layout.display = None if notebook else "none"

    def add_parameter_row(self, key: str = "", value: str = "") -> None:
        import ipywidgets as w

        k = w.Text(value=key, placeholder="name", layout=w.Layout(width="10em"))
        v = w.Text(value=value, placeholder="value (JSON or text)")
        remove = w.Button(description="✕", layout=w.Layout(width="3em"))
        row = w.HBox([k, v, remove])
        remove.on_click(lambda _b: self._remove_row(row))
        self.param_rows.children = (*self.param_rows.children, row)

    def _remove_row(self, row: Any) -> None:
        self.param_rows.children = tuple(r for r in self.param_rows.children if r is not row)

    def parameter_rows(self) -> list[tuple[str, str]]:
        return [(r.children[0].value, r.children[1].value) for r in self.param_rows.children]

    def spec(self) -> dict[str, Any]:
        """The spec the form describes (raises :class:`PanelError`)."""
        return build_spec(
            kind=self.kind.value,
            name=self.name.value,
            path=self.path.value,
            args=self.args.value,
            gpus=self.gpus.value,
            image=self.image.value,
            parameters=self.parameter_rows(),
            home=self.home,
        )

    # ------------------------------------------------------------------ actions
    def _in_thread(self, fn: Callable[[], None]) -> None:
        threading.Thread(target=self._guard, args=(fn,), daemon=True).start()

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except (GatewayError, ConfigError, PanelError, httpx.HTTPError) as exc:
            self.status_line.value = f'<pre style="color:#c62828">{html.escape(str(exc))}</pre>'

    def _client(self) -> GatewayClient:
        return self._client_factory()

    def submit(self) -> None:
        try:
            spec = self.spec()
        except PanelError as exc:
            self.submit_result.value = f'<span style="color:#c62828">{html.escape(str(exc))}</span>'
            return
        with self._client() as client:
            try:
                job = client.submit(spec)
            except GatewayError as exc:
                self.submit_result.value = (
                    f'<pre style="color:#c62828">{html.escape(str(exc))}</pre>'
                )
                return
        self.submit_result.value = (
            f'<span style="color:#2e8b3e">Submitted {html.escape(job["name"])} '
            f"(<code>{html.escape(job['id'])}</code>)</span>"
        )
        self.refresh()
        self.job_select.value = job["id"]

    def refresh(self) -> None:
        with self._client() as client:
            jobs = list(client.list(limit=50))
        self.show_jobs(jobs)
        self.show_cull(self.culler.status())

    def show_jobs(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs
        self.table.value = jobs_table_html(jobs)
        current = self.job_select.value
        self.job_select.options = [(f"{j['name']} ({j['id']}) {j['state']}", j["id"]) for j in jobs]
        ids = [j["id"] for j in jobs]
        if current in ids:
            self.job_select.value = current
        self._sync_cancel()

    def _sync_cancel(self) -> None:
        """Only a job that can still stop may be cancelled."""
        chosen = next((j for j in self.jobs if j["id"] == self.job_select.value), None)
        self.cancel_button.disabled = (
            chosen is None or chosen.get("state") not in CANCELLABLE_STATES
        )

    def show_cull(self, status: Mapping[str, Any] | None) -> None:
        self.cull_html.value = cull_warning_html(status)
        warned = bool(status and status.get("state") == "warned")
        self.keep_button.layout.display = None if warned else "none"
        self.keep_button.disabled = not (status and int(status.get("keeps_left", 0)) > 0)

    def keep(self) -> None:
        ok, message = self.culler.keep()
        self.status_line.value = html.escape(("Kept: " if ok else "Refused: ") + message)
        self.show_cull(self.culler.status())

    def cancel(self) -> None:
        job_id = self.job_select.value
        if not job_id:
            return
        with self._client() as client:
            client.cancel(job_id)
        self.status_line.value = f"Cancel requested for <code>{html.escape(job_id)}</code>"
        self.refresh()

    def download(self) -> None:
        job_id = self.job_select.value
        if not job_id:
            return
        written = []
        with self._client() as client:
            for item in client.outputs(job_id).get("items", []):
                dest = output_destination(self.home, job_id, item["path"])
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download(client.output_url(job_id, item["path"]), dest)
                written.append(item["path"])
        where = f"~/outputs/{job_id}/"
        self.status_line.value = html.escape(f"Downloaded {len(written)} file(s) to {where}")

    def follow_log(self, job_id: str | None) -> None:
        if not job_id:
            return
        self._log_job = job_id
        self.log_view.value = ""

        def pump() -> None:
            with self._client() as client:
                for chunk in client.logs(job_id, follow=True):
                    if self._log_job != job_id or self._stop.is_set():
                        return
                    self.log_view.value += chunk

        self._log_thread = threading.Thread(target=self._guard, args=(pump,), daemon=True)
        self._log_thread.start()

    def start_auto_refresh(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.auto_refresh):
                try:
                    self.refresh()
                except Exception as exc:  # noqa: BLE001 - shown, retried at the next tick
                    self.status_line.value = html.escape(f"refresh failed: {exc}")

        threading.Thread(target=loop, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._log_job = None


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0
