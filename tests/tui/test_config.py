from pianorhythm.tui import config as cfg


def test_round_trip_with_awkward_strings(tmp_path):
    path = tmp_path / "c" / "config.toml"
    config = cfg.Config(name='a "quoted" \\ name\x07', color="#123456", volume=0.25, instrument=40)
    cfg.save(config, path)
    assert cfg.load(path) == config


def test_unknown_keys_kept_and_bad_types_ignored(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('name = "x"\nvolume = "loud"\nfuture = 3\n')
    loaded = cfg.load(path)
    assert loaded.name == "x" and loaded.volume == cfg.Config().volume
    cfg.save(loaded, path)
    assert "future = 3" in path.read_text()


def test_broken_file_gives_defaults_and_says_which_line(tmp_path, caplog):
    path = tmp_path / "config.toml"
    path.write_text('name = "ada"\nvolume = [unclosed\n')
    loaded = cfg.read(path)
    assert loaded.config == cfg.Config() and loaded.broken
    assert loaded.problems == (
        f"{path} is not valid TOML: Invalid value (at line 2, column 11). "
        "Using the default settings until it is fixed.",
    )
    assert caplog.messages == list(loaded.problems)  # headless and the log say it too


def test_saving_over_a_broken_file_keeps_it_aside(tmp_path):
    path = tmp_path / "config.toml"
    original = 'name = "ada"\nvolume = [unclosed\n'
    path.write_text(original)
    kept = cfg.save(cfg.Config(latency="safe"), path)
    assert kept is not None and kept.name.startswith("config.toml.broken-")
    assert kept.read_text() == original  # the user's file, byte for byte
    assert cfg.load(path).latency == "safe"
    assert cfg.save(cfg.Config(latency="low"), path) is None  # a file that parses is simply replaced
    assert [p.name for p in tmp_path.iterdir() if "broken" in p.name] == [kept.name]


def test_a_value_of_the_wrong_type_is_named_with_its_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('name = "ada"\n\n  volume = "loud"\ninstrument = 4.5\n')
    loaded = cfg.read(path)
    assert (loaded.config.name, loaded.config.volume, loaded.config.instrument) == ("ada", 0.8, 0)
    assert not loaded.broken
    assert loaded.problems == (
        f"{path} line 4: instrument should be a whole number, not 4.5; using 0.",
        f"{path} line 3: volume should be a number, not 'loud'; using 0.8.",
    )


def test_flags_override(tmp_path):
    from pianorhythm.tui.cli import build_parser

    args = build_parser().parse_args(["--name", "flag", "--latency", "low"])
    merged = cfg.with_flags(cfg.Config(name="saved", latency="safe"), args)
    assert (merged.name, merged.latency) == ("flag", "low")


def test_env_overrides_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cfg.ENV_DIR, str(tmp_path))
    assert cfg.config_path() == tmp_path / "config.toml"
