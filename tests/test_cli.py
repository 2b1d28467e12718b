"""The ``tinyid`` command end to end, in process (plus one real console-script call)."""
import json
import shutil
import subprocess

import numpy as np
import pytest

from tinyid.cli import main, parse_spec
from tinyid.train import Trainer

SMALL = ["--data", "shapeset", "--sizes", "1024,12,9", "--n-train", "120", "--n-test", "40", "--batch-size", "30",
         "--no-progress"]


def run_cli(args, capsys):
    """Run ``tinyid ARGS``; returns (exit status, stdout, stderr)."""
    try:
        status = main(args)
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def test_train_writes_metrics_checkpoint_and_figure(tmp_path, capsys):
    status, out, err = run_cli(["train", *SMALL, "--epochs", "2", "--out", str(tmp_path)], capsys)
    assert status == 0, err
    assert "final test accuracy" in out
    assert "epoch 1: train_loss" in out and "epoch 2: " in out  # no terminal here: one line per epoch
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_train"] == 120 and metrics["n_test"] == 40
    assert metrics["spec"]["sizes"] == [1024, 12, 9] and metrics["model"]["activation"] == {"name": "tanh"}
    assert [r["epoch"] for r in metrics["history"]["epochs"]] == [1, 2]
    assert 0 <= metrics["final_test_acc"] <= 1
    assert f"{metrics['final_test_acc']:.4f}" in out
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    trainer = Trainer.load(tmp_path / "checkpoint.npz")
    assert (trainer.epoch, trainer.step) == (2, 8)


def test_resume_continues_the_same_run(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_cli(["train", *SMALL, "--epochs", "2", "--out", str(straight)], capsys)[0] == 0
    assert run_cli(["train", *SMALL, "--epochs", "1", "--out", str(split)], capsys)[0] == 0
    assert run_cli(["train", *SMALL, "--epochs", "1", "--resume", "--out", str(split)], capsys)[0] == 0
    a, b = Trainer.load(straight / "checkpoint.npz"), Trainer.load(split / "checkpoint.npz")
    assert b.epoch == 2
    for (Wa, ba), (Wb, bb) in zip(a.model.params, b.model.params):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def test_activation_and_init_parameters_from_the_command_line(tmp_path, capsys):
    status, _, err = run_cli(["train", *SMALL, "--epochs", "1", "--activation", "leaky_relu:slope=0.2",
                              "--init", "he_normal:mode=fan_out,a=0.2", "--optimizer", "adam", "--lr", "0.001",
                              "--dtype", "float64", "--out", str(tmp_path)], capsys)
    assert status == 0, err
    model = json.loads((tmp_path / "metrics.json").read_text())["model"]
    assert model["activation"] == {"name": "leaky_relu", "slope": 0.2}
    assert model["init"] == {"name": "he_normal", "mode": "fan_out", "a": 0.2}
    assert model["dtype"] == "float64"


def test_parse_spec():
    assert parse_spec("tanh") == "tanh"
    assert parse_spec("identity:sigma=2") == {"name": "identity", "sigma": 2.0}
    assert parse_spec("he_normal:mode=fan_out") == {"name": "he_normal", "mode": "fan_out"}


@pytest.mark.parametrize("args, message", [
    (["train", *SMALL[:2], "--sizes", "10,9", "--out", "x"], "must start with 1024 and end with 9"),
    (["train", "--data", "nosuch", "--sizes", "4,2", "--out", "x"], "unknown data set 'nosuch'"),
    (["train", *SMALL, "--activation", "swish", "--out", "x"], "unknown activation 'swish'"),
    (["train", *SMALL, "--init", "identity:gain=2", "--out", "x"], "gain"),
    (["train", *SMALL, "--init", "identity:sigma", "--out", "x"], "name:key=value"),
    (["train", *SMALL, "--lr", "-1", "--out", "x"], "positive number"),
    (["train", *SMALL, "--sizes", "1024,x,9", "--out", "x"], "comma-separated integers"),
    (["train", *SMALL, "--epochs", "two", "--out", "x"], "non-negative integer"),
    (["train", *SMALL, "--momentum", "1.5", "--out", "x"], "momentum"),
    (["train", *SMALL, "--resume", "--out", "nowhere"], "does not exist"),
    (["run", "nosuch"], "invalid choice"),
])
def test_bad_arguments_give_one_error_and_no_traceback(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(args, capsys)
    assert status == 2
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(("tinyid: error:", "tinyid train: error:", "tinyid run: error:"))
    assert not (tmp_path / "x").exists()  # nothing written for a run that never started


def test_missing_backend_is_one_clear_error(tmp_path, capsys):
    from conftest import cupy_skip_reason

    if cupy_skip_reason() is None:
        pytest.skip("CuPy runs here, so the backend is not missing")
    status, _, err = run_cli(["train", *SMALL, "--backend", "cupy", "--out", str(tmp_path)], capsys)
    assert status == 2 and "pip install 'tinyid[gpu]'" in err and "Traceback" not in err


def test_data_lists_every_data_set(capsys):
    status, out, _ = run_cli(["data"], capsys)
    assert status == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert names == ["shapeset", "fashion-mnist", "mnist", "cifar10"]
    status, out, _ = run_cli(["data", "--json"], capsys)
    rows = json.loads(out)
    assert rows[0] == {"name": "shapeset", "available": True, "where": "generated"}


def test_run_baseline_quick(tmp_path, capsys):
    status, out, err = run_cli(["run", "baseline", "--quick", "--no-progress", "--out", str(tmp_path)], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["spec"]["sizes"] == [1024, 100, 100, 100, 9]
    assert (tmp_path / "checkpoint.npz").exists() and (tmp_path / "learning_curves.png").exists()


def test_help_everywhere(capsys):
    for args in (["--help"], ["train", "--help"], ["data", "--help"], ["run", "--help"],
                 ["run", "baseline", "--help"]):
        status, out, _ = run_cli(args, capsys)
        assert status == 0 and "usage: tinyid" in out


def test_console_script_is_installed():
    exe = shutil.which("tinyid")
    if exe is None:
        pytest.skip("the tinyid console script is not on PATH (package not installed with pip)")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "train" in result.stdout and "run" in result.stdout
