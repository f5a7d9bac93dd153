"""``gpulab login`` and ``gpulab logout``: keep the hub's address and your token, like gh.

The token comes from a prompt that does not echo it, or from stdin with ``--with-token`` (for
scripts: ``gpulab login --hub-url URL --with-token < token.txt``); it is checked with the hub
before it is stored (:mod:`.config`, mode 0600).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from gpulab.extensions.client import GatewayError

from .config import Login, LoginStore
from .globals import GlobalOptions
from .help_text import examples
from .hub_client import HubClient
from .hub_url import HubUrlError, normalise_hub_url
from .output import emit, emit_error
from .runner import EXIT_FAILED, EXIT_USAGE, global_options

__all__ = ["add_login_arguments", "add_logout_arguments", "run_login", "run_logout"]

LOGIN_EXAMPLES = [
    (
        "paste the hub's address from your browser; then paste a token from its token page",
        "gpulab login --hub-url https://hub.example.org/hub/home",
    ),
    (
        "in a script, the token on stdin",
        "gpulab login --hub-url https://hub.example.org --with-token < token.txt",
    ),
]


def add_login_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Log in to a gpulab hub: give its address (any hub page's URL will do) and an API token "
        "from its token page (/hub/token). Both are kept in your configuration folder "
        "(~/.config/gpulab/hosts.json, readable only by you) for every later command."
    )
    parser.epilog = examples(LOGIN_EXAMPLES)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--with-token", action="store_true", help="read the token from stdin")


def add_logout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Forget the stored hub address and token. The token itself stays valid until you "
        "revoke it on the hub's token page."
    )


def run_login(args: argparse.Namespace) -> int:
    options = global_options(args)
    store = LoginStore()
    previous = store.load()
    hub_text = options.hub_url or (previous.hub_url if previous else "")
    if not hub_text:
        if not sys.stdin.isatty() or args.with_token:
            emit_error(options, "which hub? pass --hub-url (any hub page's URL will do)")
            return EXIT_USAGE
        hub_text = input("Hub URL (paste it from your browser): ")
    try:
        hub = normalise_hub_url(hub_text)
    except HubUrlError as exc:
        emit_error(options, f"--hub-url: {exc}")
        return EXIT_USAGE
    token = options.token or _read_token(args.with_token, hub)
    if not token:
        emit_error(options, f"no token given: create one on {hub}/hub/token")
        return EXIT_USAGE
    try:
        with HubClient(hub + "/hub/api", token) as client:
            user = client.whoami()
    except GatewayError as exc:
        refused = exc.status in (401, 403)
        message = f"the hub refused this token ({exc.message})" if refused else exc.message
        emit_error(options, message, status=exc.status or None)
        return EXIT_FAILED
    name = str(user.get("name") or "")
    path = store.save(Login(hub_url=hub, token=token, user=name))
    emit(
        options,
        {"hub_url": hub, "user": name, "config": str(path)},
        f"logged in to {hub} as {name} (saved in {path})",
    )
    return 0


def _read_token(from_stdin: bool, hub: str) -> str:
    if from_stdin:
        return sys.stdin.read().strip()
    if not sys.stdin.isatty():
        return ""
    print(f"Create a token on {hub}/hub/token and paste it here.", file=sys.stderr)
    return getpass.getpass("Token (not shown): ").strip()


def run_logout(args: argparse.Namespace) -> int:
    options: GlobalOptions = global_options(args)
    forgotten = LoginStore().clear()
    if forgotten is None:
        emit(options, {"logged_out": False}, "not logged in")
        return 0
    emit(
        options,
        {"logged_out": True, "hub_url": forgotten.hub_url},
        f"logged out of {forgotten.hub_url} (the token stays valid until you revoke it "
        f"on {forgotten.hub_url}/hub/token)",
    )
    return 0
