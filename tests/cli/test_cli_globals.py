"""Global flags are accepted anywhere on the line, like gh's and kubectl's."""

import pytest
from gpulab.extensions.cli.globals import GlobalOptions, UsageError, split_global_flags


@pytest.mark.parametrize(
    "line",
    [
        ["-o", "json", "jobs", "list"],
        ["jobs", "-o", "json", "list"],
        ["jobs", "list", "-o", "json"],
        ["jobs", "list", "--output=json"],
        ["jobs", "list", "-ojson"],
        ["--json", "jobs", "list"],
    ],
)
def test_output_flag_is_taken_from_any_position(line):
    options, rest = split_global_flags(line)
    assert options.output == "json"
    assert rest == ["jobs", "list"]


def test_hub_url_and_token_are_taken_after_the_subcommand():
    options, rest = split_global_flags(
        ["jobs", "status", "j-1", "--hub-url", "https://hub.example.org", "--token=abc"]
    )
    assert options == GlobalOptions(hub_url="https://hub.example.org", token="abc")
    assert rest == ["jobs", "status", "j-1"]


def test_words_after_double_dash_are_left_alone():
    _, rest = split_global_flags(["jobs", "submit", "--", "-o", "json"])
    assert rest == ["jobs", "submit", "--", "-o", "json"]


def test_an_unknown_output_format_is_a_usage_error_naming_the_choices():
    with pytest.raises(UsageError, match="wide, json, yaml"):
        split_global_flags(["jobs", "list", "-o", "xml"])


def test_a_flag_without_its_value_is_a_usage_error():
    with pytest.raises(UsageError, match="--hub-url needs a value"):
        split_global_flags(["jobs", "list", "--hub-url"])


def test_machine_output_is_json_and_yaml_only():
    assert GlobalOptions(output="yaml").machine
    assert not GlobalOptions(output="wide").machine
