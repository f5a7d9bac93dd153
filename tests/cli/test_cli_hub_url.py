"""`--hub-url` accepts what people paste from the browser's address bar."""

import pytest
from gpulab.extensions.cli.hub_url import HubUrlError, normalise_hub_url


@pytest.mark.parametrize(
    ("pasted", "hub"),
    [
        ("https://hub.example.org", "https://hub.example.org"),
        ("https://hub.example.org/", "https://hub.example.org"),
        ("https://hub.example.org/hub/home", "https://hub.example.org"),
        ("https://hub.example.org/hub/spawn-pending/alice", "https://hub.example.org"),
        ("https://hub.example.org/user/alice/lab?token=abc#x", "https://hub.example.org"),
        ("https://hub.example.org/user/alice/lab/tree/work/train.ipynb", "https://hub.example.org"),
        ("https://example.org/jupyter/hub/home", "https://example.org/jupyter"),
        ("https://alice.hub.example.org/user/alice/lab", "https://hub.example.org"),
        (
            "https://jobs-gateway--service.hub.example.org/services/jobs-gateway/jobs",
            "https://hub.example.org",
        ),
        ("hub.example.org/hub/home", "https://hub.example.org"),
        ("localhost:8000/hub/home", "http://localhost:8000"),
        ("  http://127.0.0.1:8000/hub/token  ", "http://127.0.0.1:8000"),
    ],
)
def test_a_pasted_address_becomes_the_hub_base_url(pasted, hub):
    assert normalise_hub_url(pasted) == hub


def test_a_user_subdomain_is_kept_when_the_path_names_another_user():
    # Only alice's own page on alice.<host> says that "alice." is a per-user subdomain.
    assert normalise_hub_url("https://lab.example.org/user/alice/") == "https://lab.example.org"


@pytest.mark.parametrize("bad", ["", "ftp://hub.example.org", "https://"])
def test_what_is_not_an_http_url_is_refused(bad):
    with pytest.raises(HubUrlError):
        normalise_hub_url(bad)
