from tui import config as cfg


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


def test_broken_file_gives_defaults(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("name = [unclosed")
    assert cfg.load(path) == cfg.Config()


def test_flags_override(tmp_path):
    from tui.cli import build_parser

    args = build_parser().parse_args(["--name", "flag", "--latency", "low"])
    merged = cfg.with_flags(cfg.Config(name="saved", latency="safe"), args)
    assert (merged.name, merged.latency) == ("flag", "low")


def test_env_overrides_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cfg.ENV_DIR, str(tmp_path))
    assert cfg.config_path() == tmp_path / "config.toml"
