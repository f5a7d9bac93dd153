"""Every researcher's command explains itself with examples in `--help`."""

import pytest

from gpulab.cli import main


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["login"],
        ["server"],
        ["jobs"],
        ["jobs", "submit"],
        ["jobs", "list"],
        ["images"],
        ["completion"],
    ],
)
def test_help_ends_with_examples(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out or "Install it with" in out
    assert "gpulab" in out.split("examples:")[-1]
