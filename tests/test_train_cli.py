"""``dime-train``'s command line around the TRL parser: a short, fast ``--help``, clear errors
for no arguments, bad tasks and a missing ``train`` extra, and log lines printed once. These
run without the training extras (TRL is needed only where a test says so)."""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys

import pytest

from dime_trainer import cli


def test_train_help__short_fast_and_names_the_shortcuts():
    done = subprocess.run([sys.executable, "-c", "import sys; from dime_trainer.cli import main; main(['--help']); "
                           "print(sorted(m for m in ('trl', 'transformers', 'torch') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=120, check=True)
    text = done.stdout
    assert "--smoke" in text and "--config" in text and "--help-all" in text and "--tasks" in text
    assert "--model_name_or_path" in text and "qwen3_8b_grpo" in text
    assert len(text.splitlines()) < 120
    assert text.rstrip().endswith("[]")  # no heavy import for --help


@pytest.mark.parametrize("argv", [[], ["--max_steps", "3"], ["--output_dir", "x"]])
def test_train_cli__no_config_or_model_is_named_as_such(argv):
    with pytest.raises(SystemExit, match="no config or model given.*--smoke"):
        cli.main(argv)


@pytest.mark.parametrize(("text", "expected"), [("all", None), ("retry_storm", ["retry_storm"]),
                                                (" retry_storm , zombie_node ", ["retry_storm", "zombie_node"])])
def test_train_cli__parse_tasks(text, expected):
    assert cli.parse_tasks(text) == expected


@pytest.mark.parametrize("text", ["retry_stom", "", "retry_storm,nope"])
def test_train_cli__bad_tasks_are_a_message_listing_the_valid_ids(text):
    with pytest.raises(SystemExit, match="unknown task.*valid: all.*retry_storm"):
        cli.parse_tasks(text)


def test_train_cli__bad_tasks_stop_before_any_model_or_dataset(monkeypatch, tmp_path):
    pytest.importorskip("trl")
    monkeypatch.setattr(cli, "prepare_dataset", lambda *a: pytest.fail("the dataset was built"))
    with pytest.raises(SystemExit, match="unknown task"):
        cli.main(["--smoke", "--tasks", "retry_stom", "--output_dir", str(tmp_path)])
    assert not (tmp_path / "tiny-qwen3").exists()


def test_train_cli__an_unloadable_model_stops_before_the_dataset_is_built(monkeypatch, tmp_path):
    pytest.importorskip("trl")
    monkeypatch.setattr(cli, "prepare_dataset", lambda *a: pytest.fail("the dataset was built"))
    with pytest.raises(SystemExit, match="cannot load model"):
        cli.main(["--smoke", "--tiny_model", "false", "--model_name_or_path", str(tmp_path / "no-such-model"),
                  "--output_dir", str(tmp_path)])


def test_train_cli__a_base_install_gets_the_install_hint(monkeypatch):
    def no_trl():
        raise ModuleNotFoundError("No module named 'trl'", name="trl")

    monkeypatch.setattr(cli, "make_parser", no_trl)
    with pytest.raises(SystemExit, match=r"No module named 'trl'; install the training extras: pip install -e '.\[train\]'"):
        cli.main(["--smoke"])


def test_train_cli__help_all_has_no_rst_markup(capsys):
    pytest.importorskip("trl")
    cli.main(["--help-all"])
    text = capsys.readouterr().out
    assert "--num_generations" in text and "--tasks" in text
    assert "``" not in text and ":class:`" not in text and ":obj:`" not in text


def test_train_logging__a_library_with_its_own_handler_prints_once(monkeypatch):
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    root_stream, own_stream = io.StringIO(), io.StringIO()
    cli.configure_logging(root_stream)
    hub = logging.getLogger("fake_hub_library")
    monkeypatch.setattr(hub, "handlers", [logging.StreamHandler(own_stream)])
    hub.warning("downloading weights")
    logging.getLogger("dime_trainer").info("building the dataset")
    assert own_stream.getvalue() == "downloading weights\n"
    assert root_stream.getvalue() == "INFO dime_trainer: building the dataset\n"


class _RankArgs:
    """The two ``training_args`` attributes ``prepare_dataset_main_first`` uses, for one rank."""

    def __init__(self, rank: int, events: list):
        self.process_index, self.seed, self.events = rank, 0, events

    @contextlib.contextmanager
    def main_process_first(self, local=True, desc="work"):
        self.events.append((self.process_index, "first" if self.process_index == 0 else "waited", local))
        yield


def test_train_cli__dataset_built_and_saved_by_the_main_process_only_others_load_it(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    import dime_trainer.data as data

    dime_args = cli.DimeArguments(tasks="retry_storm", dataset_episodes=1, dataset_max_steps=2, balance_tasks=False,
                                  dataset_path=str(tmp_path / "prompts"))
    events = []
    main = cli.prepare_dataset_main_first(dime_args, _RankArgs(0, events))
    assert (tmp_path / "prompts").exists()
    monkeypatch.setattr(data, "build_prompt_dataset", lambda **kw: pytest.fail("a replica rebuilt the dataset"))
    replica = cli.prepare_dataset_main_first(dime_args, _RankArgs(1, events))
    assert replica["snapshot"] == main["snapshot"]
    assert events == [(0, "first", False), (1, "waited", False)]  # global main process, not one per node


def test_train_cli__a_replica_without_the_saved_copy_builds_but_never_writes(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    import dime_trainer.data as data

    monkeypatch.setattr(data, "build_prompt_dataset", lambda **kw: ["row"])
    monkeypatch.setattr(data, "save_dataset", lambda *a: pytest.fail("a replica wrote the dataset"))
    dime_args = cli.DimeArguments(tasks="retry_storm", dataset_path=str(tmp_path / "elsewhere"))
    assert cli.prepare_dataset_main_first(dime_args, _RankArgs(2, [])) == ["row"]
