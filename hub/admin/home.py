"""Users' homes: snapshot, reset, restore, list; sweep deleted users' homes.

  gpulab admin home list alice
  gpulab admin home snapshot alice
  gpulab admin home reset alice            # snapshot, then an empty home (asks first)
  gpulab admin home restore alice SNAPSHOT # snapshot the current home, then restore (asks first)
  gpulab admin home sweep [--dry-run]      # delete deleted users' homes past their grace period

Reset and restore are refused while the user's server or one of their jobs mounts the home.
The sweep asks the hub whether each owner is still deleted (--hub-api-url, else
$JUPYTERHUB_API_URL, and $JUPYTERHUB_API_TOKEN, a token that may read users) and refuses to run
without it; a home whose owner exists again is unmarked.
The cluster comes from --kubeconfig (else $KUBECONFIG, else the in-cluster account, else
~/.kube/config), the namespace from --namespace (else $GPULAB_NAMESPACE, $POD_NAMESPACE,
"default"), the policy from --policy (else $GPULAB_POLICY). See docs/homes.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

ACTIONS = ("list", "snapshot", "reset", "restore", "sweep")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("user", nargs="?", help="the JupyterHub username")
    parser.add_argument("snapshot", nargs="?", help="restore: the snapshot to restore from")
    parser.add_argument("--policy", default=None, help="policy file (default $GPULAB_POLICY)")
    parser.add_argument(
        "--kubeconfig", default=None, help="default $KUBECONFIG, in-cluster, ~/.kube/config"
    )
    parser.add_argument("--namespace", "-n", default=None, help="namespace of the homes")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--dry-run", action="store_true", help="sweep: only say what it would do")
    parser.add_argument(
        "--hub-api-url",
        default=None,
        help="sweep: the hub API, e.g. https://hub.example.org/hub/api (default "
        "$JUPYTERHUB_API_URL; the token comes from $JUPYTERHUB_API_TOKEN)",
    )
    parser.add_argument(
        "--wait", type=float, default=600.0, help="seconds to wait for snapshots and claims"
    )


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    for var in ("GPULAB_NAMESPACE", "POD_NAMESPACE"):
        if os.environ.get(var):
            return os.environ[var]
    return "default"


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question}\nnot a terminal: pass --yes to confirm", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    from gpulab.hub.policy import PolicyError, load_policy

    if args.action != "sweep" and not args.user:
        print(f"gpulab admin home {args.action}: give a USER", file=sys.stderr)
        return 2
    if args.action == "restore" and not args.snapshot:
        print(
            "gpulab admin home restore USER SNAPSHOT: give the snapshot "
            f"(`gpulab admin home list {args.user}` shows them)",
            file=sys.stderr,
        )
        return 2
    path = args.policy or os.environ.get("GPULAB_POLICY")
    if not path:
        print("no policy: pass --policy FILE or set $GPULAB_POLICY", file=sys.stderr)
        return 2
    try:
        policy = load_policy(path)
    except PolicyError as e:
        print(f"policy {path}: {e}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, policy))


async def _run(args: argparse.Namespace, policy: Any) -> int:
    from gpulab.hub.homes import HomeError, Homes

    namespace = _namespace(args)
    homes = await Homes.connect(args.kubeconfig, namespace, policy, wait_seconds=args.wait)
    try:
        return await _dispatch(args, homes)
    except HomeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        await homes.close()


async def _dispatch(args: argparse.Namespace, homes: Any) -> int:
    user = args.user
    if args.action == "list":
        snaps = await homes.list_snapshots(user)
        if not snaps:
            print(f"no snapshots of {user}'s home ({homes.claim_name(user)})")
            return 0
        print(f"{'SNAPSHOT':<50} {'REASON':<8} {'READY':<6} {'SIZE':<8} CREATED")
        for s in snaps:
            ready = "yes" if s.ready else ("error" if s.error else "no")
            print(
                f"{s.name:<50} {s.reason or '-':<8} {ready:<6} {s.restore_size or '-':<8} {s.created}"
            )
            if s.error:
                print(f"  error: {s.error}")
        return 0
    if args.action == "snapshot":
        name = await homes.snapshot_home(user, "manual")
        print(f"snapshot {name} of {user}'s home is ready")
        return 0
    if args.action == "reset":
        claim = homes.claim_name(user)
        if not _confirm(
            args,
            f"Reset {user}'s home ({claim} in {homes.namespace})? It is snapshotted first, "
            "then replaced by an empty home.",
        ):
            return 1
        result = await homes.reset_home(user)
        print(
            f"{user}'s home {result.claim} is empty now; the old files are in snapshot "
            f"{result.snapshot}"
        )
        print(f"undo: gpulab admin home restore {user} {result.snapshot}")
        return 0
    if args.action == "restore":
        claim = homes.claim_name(user)
        if not _confirm(
            args,
            f"Replace {user}'s home ({claim} in {homes.namespace}) with snapshot "
            f"{args.snapshot}? The current home is snapshotted first.",
        ):
            return 1
        result = await homes.restore_home(user, args.snapshot)
        print(f"{user}'s home {result.claim} was restored from {result.restored_from}")
        if result.previous:
            print(f"the home as it was before is in snapshot {result.previous}")
            print(f"undo: gpulab admin home restore {user} {result.previous}")
        return 0
    return await _sweep(args, homes)


async def _sweep(args: argparse.Namespace, homes: Any) -> int:
    from gpulab.hub.homes import HubUsers

    users = HubUsers.from_env(args.hub_api_url)
    try:
        results = await homes.sweep_expired(owner_exists=users.exists, dry_run=args.dry_run)
    finally:
        await users.close()
    if not results:
        print("no homes are marked for deletion")
    for r in results:
        verb = ("would delete" if args.dry_run else "deleted") if r.deleted else "kept"
        print(f"{r.claim}: {verb} ({r.reason})")
    return 0
