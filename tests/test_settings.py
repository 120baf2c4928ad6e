from pathlib import Path

import pytest

from posterrec_settings import ConfigError, load_settings


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
