"""Kueue objects of a gpulab policy.

  gpulab admin kueue render POLICY [--namespace NS] [--user USER --group GROUP]

prints, as YAML documents, the Kueue objects (kueue.x-k8s.io/v1beta2) gpulab makes from the
policy: WorkloadPriorityClasses, ResourceFlavors, Cohorts and the groups' ClusterQueues; with
--user and --group also that user's ClusterQueue and LocalQueues (the hub makes those on a
user's first spawn or submit). The hub applies the same objects itself and keeps them in sync
when the policy changes: the output is for reading, reviewing and GitOps, not a step to run.
Exit status 1 when the policy is invalid (its problems on stderr). See docs/scheduling.md.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_NAMESPACE = "gpulab"  # the namespace of helm-values/manifests/


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kueue_command", metavar="KUEUE_COMMAND", required=True)
    render = sub.add_parser("render", help="print the Kueue objects of a policy as YAML")
    render.add_argument("file", metavar="POLICY", help="the policy YAML file")
    render.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"the users' namespace, the only one the queues take work from "
        f"(default: {DEFAULT_NAMESPACE})",
    )
    render.add_argument("--user", help="also render this hub user's queues (needs --group)")
    render.add_argument("--group", help="the user's quota group")


def render_yaml(policy_file: str, namespace: str, user: str | None, group: str | None) -> str:
    """The YAML documents; PolicyError for an invalid policy, KeyError for an unknown group."""
    import yaml
    from gpulab.hub.kueue.render import render_policy, render_user
    from gpulab.hub.policy import load_policy

    policy = load_policy(policy_file)
    objects = render_policy(policy, namespace)
    if user is not None and group is not None:
        objects += render_user(policy, user, group, namespace)
    return yaml.safe_dump_all(objects, sort_keys=False, width=100)


def run(args: argparse.Namespace) -> int:
    from gpulab.hub.policy import PolicyError

    if (args.user is None) != (args.group is None):
        print("--user and --group go together", file=sys.stderr)
        return 2
    try:
        text = render_yaml(args.file, args.namespace, args.user, args.group)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyError:
        print(f"--group: {args.group!r} is not a group of {args.file}", file=sys.stderr)
        return 1
    print(header(args.file, args.namespace), end="")
    print(text, end="")
    return 0


def header(policy_file: str, namespace: str) -> str:
    """The comment the YAML starts with: what it is and how it is kept."""
    return (
        f"# Kueue objects (kueue.x-k8s.io/v1beta2, Kueue >= 0.15) of {policy_file} for\n"
        f"# namespace {namespace}, rendered by\n"
        f"#   gpulab admin kueue render {policy_file} --namespace {namespace}\n"
        "# The hub applies the same objects from the policy it runs with at start, keeps them\n"
        "# in sync on every policy change and makes each user's queues on their first spawn or\n"
        "# submit (docs/scheduling.md): this output is for review; applying it is optional.\n"
    )
