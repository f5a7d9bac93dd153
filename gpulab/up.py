"""``gpulab up``: the whole platform on this machine, on the embedded kubesim backend."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

DEFAULT_STATE_DIR = Path(".gpulab")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start kubesim (an embedded Kubernetes with simulated GPU nodes), a local Ceph S3 "
        "gateway when Ceph is installed, JupyterHub with gpulab and the real "
        "configurable-http-proxy, then wait. Ctrl-C stops everything."
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="public port (default: 8000); if something listens there, nothing starts",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        help="policy file (default: the demo policy shipped with gpulab)",
    )
    parser.add_argument(
        "--nodes",
        default="2x4",
        help="simulated GPU nodes as NODESxGPUS (default: 2x4)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="where the hub database, kubesim volumes and logs live (default: ./.gpulab)",
    )
    parser.add_argument("--no-s3", action="store_true", help="do not start the Ceph S3 gateway")
    parser.add_argument(
        "--no-kueue",
        action="store_true",
        help="run kubesim without its Kueue: gpulab then admits servers and jobs itself with its "
        "own quotas (no queueing, no borrowing), as on a cluster where Kueue is not installed",
    )
    parser.add_argument(
        "--single-origin",
        action="store_true",
        help="serve every user's server and the services under one origin "
        "(http://127.0.0.1:PORT) instead of one subdomain of localhost each; only for a "
        "browser that does not resolve *.localhost, and only for users who trust each other",
    )


def run(args: argparse.Namespace) -> int:
    import yaml
    from rich.console import Console

    from gpulab.hub import demo
    from gpulab.platform import LocalPlatform, PlatformConfig, PlatformError

    console = Console()
    config = PlatformConfig(
        state_dir=args.state_dir,
        policy_path=(args.policy or demo.policy_file()).resolve(),
        port=args.port,
        nodes=args.nodes,
        s3=not args.no_s3,
        subdomains=not args.single_origin,
        kueue=not args.no_kueue,
    )
    platform = LocalPlatform(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with console.status("starting gpulab") as status:
            platform.start(progress=lambda msg: status.update(msg))
    except PlatformError as exc:
        console.print(f"[red]gpulab up failed:[/red] {exc}")
        return 1
    users = yaml.safe_load(demo.users_file().read_text())["users"]
    console.print(f"\n[bold green]gpulab is up:[/bold green] {platform.hub_url}/")
    console.print("Log in as one of the demo users (password: [bold]gpulab[/bold]):")
    for user in users:
        groups = ", ".join(user.get("groups") or ["(default group)"])
        admin = " [yellow](admin)[/yellow]" if user.get("admin") else ""
        console.print(f"  {user['name']:<8} groups: {groups}{admin}")
    if platform.subdomain_host:
        console.print(
            f"Each server has its own origin, e.g. alice's at {platform.user_url('alice')}; "
            f"the GPU dashboard (admins): {platform.service_url('culler')}dashboard/"
        )
    else:
        console.print(
            "[yellow]One origin for every user:[/yellow] a page one user serves can act as "
            "another who opens it. For trusted users only."
        )
    console.print(f"kubectl: [bold]KUBECONFIG={platform.kubeconfig} kubectl get pods[/bold]")
    if platform.s3:
        console.print(f"S3 (Ceph RGW): {platform.s3.endpoint}")
    else:
        console.print("S3: off (install Ceph to keep job outputs in S3; they stay on the home)")
    console.print(f"logs: {platform.state_dir}/*.log    Ctrl-C stops everything.")
    try:
        stop.wait()
    finally:
        console.print("stopping gpulab ...")
        platform.stop()
    return 0
