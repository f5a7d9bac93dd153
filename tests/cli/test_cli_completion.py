"""`gpulab completion bash|zsh|fish` prints a script made from the parser."""

import shutil
import subprocess

import pytest
from gpulab.extensions.cli.completion import command_tree, script

from gpulab.cli import build_parser


def test_the_tree_has_every_command_and_its_flags():
    tree = command_tree(build_parser())
    assert {"login", "logout", "server", "jobs", "images", "quota", "completion"} <= set(tree[""])
    assert {"start", "stop", "list", "status"} <= set(tree["server"])
    assert {"--notebook", "--gpus", "--follow", "-p"} <= set(tree["jobs submit"])


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["gpulab", "jobs", "outputs", ""], {"list", "get"}),
        (["gpulab", "-o", "json", "server", ""], {"start", "stop"}),
        (["gpulab", "jobs", "list", "-o", ""], {"wide", "json", "yaml"}),
    ],
)
def test_bash_completes_subcommands_after_the_words_typed(words, expected):
    program = script("bash", command_tree(build_parser()))
    array = " ".join(f'"{w}"' for w in words)
    shell = f'{program}\nCOMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _gpulab; echo "${{COMPREPLY[@]}}"'
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True).stdout
    assert expected <= set(out.split())


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_register_the_command(shell):
    text = script(shell, command_tree(build_parser()))
    assert ("compdef _gpulab gpulab" if shell == "zsh" else "complete -c gpulab") in text
