"""``gpulab kubesim serve``: run the embedded Kubernetes API (and its kubelet) on loopback."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["serve"], help="serve: run until SIGINT/SIGTERM")
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (non-loopback is refused)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port; 0 picks a free one (default)"
    )
    parser.add_argument(
        "--data-dir", help="folder for pod files and logs (default: a new temp folder)"
    )
    parser.add_argument(
        "--kubeconfig", help="where to write the kubeconfig (default: DATA_DIR/kubeconfig)"
    )
    parser.add_argument(
        "--nodes", help="NxG (N nodes with G GPUs each, default 2x4) or a YAML nodes file"
    )
    parser.add_argument("--audit-log", help="append one JSON line per API request to this file")
    parser.add_argument(
        "--token-auth-file",
        help='CSV of bearer tokens (token,user,uid,"group1,group2"): requests then need a '
        "token and RBAC objects decide what each user may do (default: no authentication)",
    )
    parser.add_argument(
        "--store-dir",
        help="keep every API object in this folder (snapshot + journal) so that a restart, "
        "even after a kill, resumes the cluster (default: in memory only)",
    )
    parser.add_argument(
        "--kueue",
        action="store_true",
        help="serve Kueue's API (kueue.x-k8s.io/v1beta2) and run kubesim's Kueue: Jobs and "
        "Pods with the kueue.x-k8s.io/queue-name label wait for admission (default: off)",
    )
    parser.add_argument(
        "--kueue-no-fair-sharing",
        action="store_true",
        help="with --kueue: Kueue configured without fairSharing (default: on, as gpulab's "
        "Kueue set-up asks: a cohort's waiting work goes by its queues' usage first)",
    )
    parser.add_argument(
        "--cron-clock-speed",
        type=float,
        default=1.0,
        help="run the CronJob controller's clock this many times faster than wall time "
        "(tests and demos: 60 fires an hourly schedule every minute; default 1)",
    )
    parser.add_argument(
        "--history-window", type=int, default=0, help="watch history length (default 5000 events)"
    )


def run(args: argparse.Namespace) -> int:
    from gpulab.kubesim.main import serve_forever  # noqa: PLC0415 - keep `gpulab --help` light

    return serve_forever(args)
