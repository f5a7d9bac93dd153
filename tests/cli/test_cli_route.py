"""Which hub and token a command uses: flags, then the environment, then `gpulab login`;
inside a gpulab server, the server's own route."""

import pytest
from gpulab.extensions.cli.config import Login, LoginStore
from gpulab.extensions.cli.globals import GlobalOptions
from gpulab.extensions.cli.transport import ConfigError, resolve_route

SERVER_ENV = {
    "JUPYTERHUB_API_TOKEN": "server-token",
    "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
    "GPULAB_GATEWAY_URL": "http://gateway:8090/services/jobs-gateway/",
}


@pytest.fixture
def store(tmp_path):
    return LoginStore(tmp_path)


def test_the_stored_login_is_used_on_a_laptop(store):
    store.save(Login("https://hub.example.org", "stored", "alice"))
    route = resolve_route(GlobalOptions(), {}, store)
    assert (route.hub_url, route.token) == ("https://hub.example.org", "stored")
    assert route.hub_api_url == "https://hub.example.org/hub/api"


def test_flags_win_over_the_stored_login_and_are_normalised(store):
    store.save(Login("https://hub.example.org", "stored"))
    options = GlobalOptions(hub_url="https://other.example.org/hub/home", token="flag")
    route = resolve_route(options, {}, store)
    assert (route.hub_url, route.token) == ("https://other.example.org", "flag")


def test_the_stored_token_is_never_sent_to_another_hub(store):
    store.save(Login("https://hub.example.org", "stored"))
    with pytest.raises(ConfigError, match="token"):
        resolve_route(GlobalOptions(hub_url="https://evil.example.org"), {}, store)


def test_the_environment_gives_hub_and_token(store):
    env = {"GPULAB_HUB_URL": "https://hub.example.org/hub/home", "GPULAB_TOKEN": "env"}
    route = resolve_route(GlobalOptions(), env, store)
    assert (route.hub_url, route.token) == ("https://hub.example.org", "env")


def test_inside_a_server_its_own_route_and_token_are_used(store):
    store.save(Login("https://hub.example.org", "stored"))
    route = resolve_route(GlobalOptions(), SERVER_ENV, store)
    assert route.inside_server
    assert route.token == "server-token"
    assert route.gateway_url == SERVER_ENV["GPULAB_GATEWAY_URL"]
    assert route.hub_api_url == "http://hub:8081/hub/api"


def test_a_named_gateway_and_token_need_no_hub(store):
    env = {"GPULAB_GATEWAY_URL": "http://gw:8090/", "GPULAB_TOKEN": "env"}
    route = resolve_route(GlobalOptions(), env, store)
    assert (route.gateway_url, route.token, route.inside_server) == (
        "http://gw:8090/",
        "env",
        False,
    )


def test_without_a_hub_the_error_says_to_log_in(store):
    with pytest.raises(ConfigError, match="gpulab login"):
        resolve_route(GlobalOptions(), {}, store)


def test_a_hub_without_a_token_names_the_token_page(store):
    with pytest.raises(ConfigError, match="token page"):
        resolve_route(GlobalOptions(hub_url="https://hub.example.org"), {}, store)
