from pathlib import Path

from posterrec_settings import ConfigError, Settings, load_settings

import pytest


def test_defaults_derive_paths_from_home():
    settings = load_settings(env={"POSTERREC_HOME": "/srv/posterrec"})
    assert settings.store == Path("/srv/posterrec/posterrec.sqlite3")
    assert settings.index_root == Path("/srv/posterrec/index")


def test_environment_overrides_file(tmp_path):
    config = tmp_path / "posterrec.toml"
    config.write_text("[posterrec]\nrecall_floor = 0.9\nletterbox = false\nkeep_versions = 5\n")
    settings = load_settings(env={"POSTERREC_CONFIG": str(config), "POSTERREC_KEEP_VERSIONS": "7"})
    assert (settings.recall_floor, settings.letterbox, settings.keep_versions) == (0.9, False, 7)


def test_bad_values_name_their_source(tmp_path):
    with pytest.raises(ConfigError, match=r"\$POSTERREC_MAX_K: max_k='many'"):
        load_settings(env={"POSTERREC_MAX_K": "many"})
    config = tmp_path / "posterrec.toml"
    config.write_text("recal_floor = 0.9\n")
    with pytest.raises(ConfigError, match="unknown setting 'recal_floor'"):
        load_settings(config_file=config, env={})
    misspelt = (
        r"unknown setting\(s\) in the environment: POSTERREC_KEP_VERSIONS \(did you mean POSTERREC_KEEP_VERSIONS\?\)$"
    )
    with pytest.raises(ConfigError, match=misspelt):
        load_settings(env={"POSTERREC_KEP_VERSIONS": "7", "POSTERREC_WORKERS": "2", "POSTERREC_CONFIG": ""})
    kubernetes = {"POSTERREC_SERVICE_HOST": "10.0.0.1", "POSTERREC_PORT": "tcp://10.0.0.1:8000"}  # a Service's
    assert load_settings(env=kubernetes).keep_versions == 3


@pytest.mark.parametrize(
    "name, value",
    [
        ("max_k", "0"),
        ("max_k", "-5"),
        ("index_poll_seconds", "inf"),
        ("index_poll_seconds", "nan"),
        ("index_poll_seconds", "-1"),
        ("recall_floor", "1.5"),
        ("keep_versions", "0"),
        ("max_upload_pixels", "0"),
        ("similar_list_depth", "0"),
    ],
)
def test_a_number_outside_what_can_work_is_refused_naming_its_source(name: str, value: str) -> None:
    """``max_k = 0`` would refuse every request, and an infinite poll interval stopped the index watcher's thread."""
    with pytest.raises(ConfigError, match=rf"\$POSTERREC_{name.upper()}: {name}='{value}' is outside \["):
        load_settings(env={f"POSTERREC_{name.upper()}": value})


@pytest.mark.parametrize("name", ["home", "index_root"])
def test_a_folder_setting_that_names_a_file_is_refused_naming_its_source(tmp_path, name: str) -> None:
    """A file as ``home`` failed only after feature extraction, where the cache folder was to be made."""
    file = tmp_path / "catalog.csv"
    file.write_text("id\n")
    with pytest.raises(ConfigError, match=rf"\$POSTERREC_{name.upper()}: {name}='{file}' is a file, not a folder"):
        load_settings(env={f"POSTERREC_{name.upper()}": str(file)})
    config = tmp_path / "posterrec.toml"
    config.write_text(f'{name} = "{file}"\n')
    with pytest.raises(ConfigError, match=rf"{config}: {name}='{file}' is a file, not a folder"):
        load_settings(config, env={})


def test_an_unknown_backbone_is_refused_naming_its_source() -> None:
    with pytest.raises(ConfigError, match=r"\$POSTERREC_BACKBONE: backbone='resnet' is not one of nasnet_mobile, "):
        load_settings(env={"POSTERREC_BACKBONE": "resnet"})


def test_settings_made_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"max_k=0 is outside \[1, inf\]"):
        Settings(max_k=0)
    assert Settings(index_poll_seconds=0).index_poll_seconds == 0  # 0: no hot swap


@pytest.mark.parametrize(
    "cli, argv",
    [
        ("recsvc.__main__", []),
        ("indexer.__main__", ["versions"]),
        ("localize.__main__", ["run", "--titles", "t.csv", "--out", "out"]),
        ("models.__main__", ["evaluate", "--model", "m", "--catalog", "c.csv"]),
    ],
)
def test_every_cli_reports_a_bad_setting_in_one_line(monkeypatch, capsys, cli: str, argv: list[str]) -> None:
    import importlib

    monkeypatch.setenv("POSTERREC_MAX_K", "many")
    try:
        code = importlib.import_module(cli).main(argv)
    except SystemExit as exit_:
        code, message = 1, str(exit_.code)
    else:
        message = capsys.readouterr().err
    assert code != 0 and message.strip().startswith("error: $POSTERREC_MAX_K: max_k='many'")
    assert "Traceback" not in message


def test_server_settings_come_from_the_environment_and_name_a_bad_value() -> None:
    from posterrec_settings import load_server_settings

    server = load_server_settings({"POSTERREC_BIND": "[::1]:9000", "POSTERREC_WORKERS": " 3 ", "POSTERREC_THREADS": ""})
    assert (server.bind, server.address, server.workers, server.threads) == ("[::1]:9000", ("::1", 9000), 3, None)
    assert load_server_settings({}).bind == "127.0.0.1:8000"
    with pytest.raises(ConfigError, match="POSTERREC_BIND must be HOST:PORT, got '8000'"):
        load_server_settings({"POSTERREC_BIND": "8000"})
    for port in ("0", "65536", "99999"):
        with pytest.raises(ConfigError, match=f"POSTERREC_BIND needs a port from 1 to 65535, got '127.0.0.1:{port}'"):
            load_server_settings({"POSTERREC_BIND": f"127.0.0.1:{port}"})
    with pytest.raises(ConfigError, match="POSTERREC_THREADS must be a whole number of at least 1, got '0'"):
        load_server_settings({"POSTERREC_THREADS": "0"})


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example/",
        "app.example",
        "https://a.example, https://b.example",
        "https://App.example",
        "https://app.example:443",
    ],
)
def test_cors_allow_origin_must_be_one_origin_or_a_star(origin: str) -> None:
    with pytest.raises(ConfigError, match="is not \\* or an origin as a browser sends it"):
        load_settings(env={"POSTERREC_CORS_ALLOW_ORIGIN": origin})
    for good in ("*", "https://app.example", "http://localhost:3000", ""):
        assert load_settings(env={"POSTERREC_CORS_ALLOW_ORIGIN": good}).cors_allow_origin == good
