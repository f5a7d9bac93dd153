"""``gpulab completion bash|zsh|fish``: a completion script made from the parser itself.

The script carries the command tree (each command's subcommands and flags), so it never runs
Python on a key press and cannot fall behind the commands: regenerate it after an upgrade.
The bash script avoids associative arrays so that macOS's bash 3.2 runs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["SHELLS", "add_arguments", "command_tree", "script"]

GLOBAL_FLAGS = ("--hub-url", "--token", "-o", "--output", "--help")
OUTPUT_VALUES = ("table", "wide", "json", "yaml")
INSTALL = {
    "bash": 'eval "$(gpulab completion bash)"  # in ~/.bashrc',
    "zsh": 'eval "$(gpulab completion zsh)"  # in ~/.zshrc, after compinit',
    "fish": "gpulab completion fish > ~/.config/fish/completions/gpulab.fish",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Print a shell completion script. Install it with:\n\n" + "\n".join(
        f"  {shell}: {how}" for shell, how in INSTALL.items()
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("shell", choices=tuple(INSTALL), help="your shell")


def run(args: argparse.Namespace) -> int:
    from gpulab.cli import build_parser

    print(script(args.shell, command_tree(build_parser())))
    return 0


def command_tree(parser: argparse.ArgumentParser, path: str = "") -> dict[str, list[str]]:
    """Each command path (``""``, ``"jobs"``, ``"jobs outputs"``) and the words that may
    follow it: its subcommands, then its flags."""
    words: list[str] = []
    tree: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append(name)
                tree.update(command_tree(sub, f"{path} {name}".strip()))
        elif not isinstance(action, argparse._HelpAction):
            words += [o for o in action.option_strings if o.startswith("--") or len(o) == 2]
    tree[path] = words
    return tree


def _bash_words(tree: dict[str, list[str]]) -> str:
    cases = "\n".join(f'    "{p}") echo "{" ".join(w)}" ;;' for p, w in sorted(tree.items()))
    return f'_gpulab_words() {{\n  case "$1" in\n{cases}\n    *) return 1 ;;\n  esac\n}}'


def _bash(tree: dict[str, list[str]]) -> str:
    return f"""# gpulab completion for bash ({INSTALL["bash"]})
{_bash_words(tree)}
_gpulab() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" cmdpath="" w i
  case "$prev" in -o|--output) COMPREPLY=( $(compgen -W "{" ".join(OUTPUT_VALUES)}" -- "$cur") ); return ;; esac
  for ((i=1; i<COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    case "$w" in -*) continue ;; esac
    if _gpulab_words "${{cmdpath:+$cmdpath }}$w" >/dev/null; then cmdpath="${{cmdpath:+$cmdpath }}$w"; fi
  done
  COMPREPLY=( $(compgen -W "$(_gpulab_words "$cmdpath") {" ".join(GLOBAL_FLAGS)}" -- "$cur") )
}}
complete -o default -F _gpulab gpulab"""


def _zsh(tree: dict[str, list[str]]) -> str:
    return f"""#compdef gpulab
# gpulab completion for zsh ({INSTALL["zsh"]})
{_bash_words(tree)}
_gpulab() {{
  local cmdpath="" w i
  if [[ ${{words[CURRENT-1]}} == (-o|--output) ]]; then compadd -- {" ".join(OUTPUT_VALUES)}; return; fi
  for ((i=2; i<CURRENT; i++)); do
    w=${{words[i]}}
    [[ $w == -* ]] && continue
    _gpulab_words "${{cmdpath:+$cmdpath }}$w" >/dev/null && cmdpath="${{cmdpath:+$cmdpath }}$w"
  done
  compadd -- $(_gpulab_words "$cmdpath") {" ".join(GLOBAL_FLAGS)}
  _files
}}
compdef _gpulab gpulab"""


def _fish(tree: dict[str, list[str]]) -> str:
    cases = "\n".join(
        f"        case '{p}'\n            printf '%s\\n' {' '.join(w)}"
        for p, w in sorted(tree.items())
    )
    return f"""# gpulab completion for fish ({INSTALL["fish"]})
function __gpulab_words
    switch "$argv[1]"
{cases}
        case '*'
            return 1
    end
end
function __gpulab_complete
    set -l tokens (commandline -opc)
    if contains -- $tokens[-1] -o --output
        printf '%s\\n' {" ".join(OUTPUT_VALUES)}
        return
    end
    set -l cmdpath ''
    for w in $tokens[2..-1]
        string match -q -- '-*' $w; and continue
        set -l candidate (string trim -- "$cmdpath $w")
        if __gpulab_words "$candidate" >/dev/null
            set cmdpath $candidate
        end
    end
    __gpulab_words "$cmdpath"
    printf '%s\\n' {" ".join(GLOBAL_FLAGS)}
end
complete -c gpulab -a '(__gpulab_complete)'"""


SHELLS: dict[str, Callable[[dict[str, list[str]]], str]] = {
    "bash": _bash,
    "zsh": _zsh,
    "fish": _fish,
}


def script(shell: str, tree: dict[str, list[str]]) -> str:
    return SHELLS[shell](tree)
