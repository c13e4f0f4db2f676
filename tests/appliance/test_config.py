"""Configuration: the documented defaults, --data / TAPELINE_DATA, the example file, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import config
from appliance.errors import ConfigError
from appliance.text import format_duration

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_service_layout():
    s = config.load()
    assert s.data_dir == Path("/var/lib/tapeline")
    assert s.catalog_url == "sqlite:////var/lib/tapeline/catalog.sqlite"
    assert s.socket_path == Path("/run/tapeline/tapeline.sock")
    assert s.store_path == Path("/var/lib/tapeline/store")
    assert s.vtl_dir == Path("/var/lib/tapeline/vtl")
    assert s.operators_group == "tapeline"
    assert (s.sync_seconds, s.keep_seconds) == (15 * 60, 12 * 86400)
    assert s.point_times == ("08:00", "11:00", "14:00", "17:00", "20:00")
    assert s.log_level == "info" and s.workers == 2 and not s.development


def test_data_dir_puts_everything_under_it(tmp_path, monkeypatch):
    s = config.load(data_dir=tmp_path)
    assert s.development
    assert s.socket_path == tmp_path / "run" / "tapeline.sock"
    assert s.catalog_url == f"sqlite:///{tmp_path}/catalog.sqlite"
    assert s.store_path == tmp_path / "store"
    monkeypatch.setenv("TAPELINE_DATA", str(tmp_path / "env"))
    assert config.load().store_path == tmp_path / "env" / "store"
    assert config.load(data_dir=tmp_path / "flag").store_path == tmp_path / "flag" / "store"  # --data wins


def test_a_file_sets_keys_and_relative_paths_are_under_the_data_dir(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text(f'data_dir = "{tmp_path}/d"\n[catalog]\nurl = "postgresql://tl@db/tapeline"\n'
                 '[api]\ngroup = "backup"\n[store]\npath = "replica"\n'
                 '[defaults]\nsync = "1h30m"\npoints = ["20:00", "8:00"]\nkeep = "2w"\n[log]\nlevel = "DEBUG"\n')
    s = config.load(f)
    assert s.catalog_url == "postgresql+psycopg://tl@db/tapeline"
    assert s.store_path == tmp_path / "d" / "replica"
    assert s.operators_group == "backup"
    assert (s.sync_seconds, s.point_times, s.keep_seconds, s.log_level) == (5400, ("08:00", "20:00"), 14 * 86400,
                                                                            "debug")
    assert s.socket_path == Path("/run/tapeline/tapeline.sock")


def test_the_documented_example_file_loads_and_matches_the_defaults():
    example = config.load(ROOT / "etc" / "tapeline.toml")
    defaults = config.load()
    assert example == defaults.__class__(**{**defaults.__dict__, "config_file": ROOT / "etc" / "tapeline.toml"})


def test_every_key_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "etc" / "tapeline.toml").read_text()
    for section, keys in config.KEYS.items():
        for key in keys:
            name = f"{section}.{key}" if section else key
            assert f"`{name}`" in doc, f"{name} is not in docs/configuration.md"
            assert f"{key} =" in example, f"{name} is not in etc/tapeline.toml"


@pytest.mark.parametrize("text,match", [
    ('[defaults]\nsync = "often"\n', "defaults.sync 'often' is not a duration: write it as sync"),
    ('[defaults]\npoints = ["25:00"]\n', "defaults.points has a bad time 25:00"),
    ('[log]\nlevel = "loud"\n', "log.level 'loud' is not a level: use one of"),
    ('[catalog]\nurl = "mysql://x"\n', "catalog.url 'mysql://x' is not a catalog URL"),
    ('[stor]\npath = "x"\n', r"bad.toml line 1: unknown section \[stor\]: remove it or correct it; did you mean "
                              r"\[store\]\?"),
    ('[store]\npth = "x"\n', r"bad.toml line 2: unknown key store.pth: remove it or correct it; did you mean path\? "
                              r"\[store\] takes path"),
    ('[jobs]\nworkers = 0\n', "jobs.workers 0 is not a worker count"),
    ("data_dir = \n", "is not valid TOML"),
    ('# site settings\n[log]\nlevel = "info"\n\n[jobs]\n  wokers = 4\n',
     r"bad.toml line 6: unknown key jobs.wokers: remove it or correct it; did you mean workers\? \[jobs\] takes workers,"),
    ('[defaults]\nkeep = "12d"\nsync = "often"\n', "bad.toml line 3: defaults.sync 'often' is not a duration"),
    ('datadir = "/srv"\n', r"bad.toml line 1: unknown key datadir: remove it or correct it; did you mean data_dir\?"),
])
def test_bad_config_is_one_line_naming_the_key_and_the_fix(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        config.load(f)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_missing_config_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="does not exist: create it"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("text,seconds", [("15m", 900), ("1h30m", 5400), ("12d", 1036800), ("90", 90),
                                          ("2w", 1209600)])
def test_durations(text, seconds):
    assert config.parse_duration(text) == seconds
    assert config.parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["", "0m", "15x", "m15", "-5m", "15m junk"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        config.parse_duration(bad)


@pytest.mark.parametrize("text,match", [
    ('[reports]\nmail = "protection"\n', "reports.mail 'protection' is not a list of report names"),
    ('[reports]\nmail_at = "7 am"\n', "reports.mail_at '7 am' is not a time"),
    ('[reports]\ndays = 0\n', "reports.days 0 is not a number of days"),
])
def test_bad_report_settings_are_one_line_naming_the_key(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        config.load(f, read_default_file=False)
