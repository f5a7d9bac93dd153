"""`gpulab login` keeps the hub URL and token in a file only its owner can read."""

import stat

from gpulab.extensions.cli.config import Login, LoginStore, config_dir


def test_the_config_file_is_mode_0600_in_a_0700_folder(tmp_path):
    store = LoginStore(tmp_path / "gpulab")
    path = store.save(Login("https://hub.example.org", "secret-token", "alice"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_saved_login_is_loaded_back(tmp_path):
    store = LoginStore(tmp_path)
    store.save(Login("https://hub.example.org", "secret-token", "alice"))
    assert LoginStore(tmp_path).load() == Login("https://hub.example.org", "secret-token", "alice")


def test_a_wider_old_file_is_made_0600_when_saved_again(tmp_path):
    store = LoginStore(tmp_path)
    store.path.write_text("{}")
    store.path.chmod(0o644)
    store.save(Login("https://hub.example.org", "t"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_logout_removes_the_file(tmp_path):
    store = LoginStore(tmp_path)
    store.save(Login("https://hub.example.org", "t"))
    assert store.clear() == Login("https://hub.example.org", "t")
    assert not store.path.exists()
    assert store.load() is None


def test_a_damaged_file_reads_as_logged_out(tmp_path):
    store = LoginStore(tmp_path)
    store.path.write_text("not json")
    assert store.load() is None


def test_the_folder_follows_xdg_config_home(tmp_path):
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "gpulab"
    assert config_dir({"XDG_CONFIG_HOME": "relative/ignored"}).name == "gpulab"
