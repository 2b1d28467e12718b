"""The paper experiments end to end in their ``--quick`` modes, through the CLI as a user runs them."""
import json

import numpy as np
import pytest

from tinyid import theory
from tinyid.cli import main


def run_cli(args, capsys):
    try:
        status = main(args)
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def glorot_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("glorot")
    status = main(["run", "glorot", "--quick", "--no-progress", "--out", str(out)])
    assert status == 0
    return out, json.loads((out / "glorot.json").read_text())


def test_glorot_writes_every_figure_and_the_table(glorot_run):
    out, results = glorot_run
    for name in ("activations_over_training", "histograms_end", "init_activations", "init_backprop_gradients",
                 "init_weight_gradients", "layer_jacobian", "test_error"):
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    table = (out / "table1.md").read_text()
    for row, paper in (("| Softsign |", "16.27"), ("| Softsign N |", "16.06"), ("| Tanh |", "27.15"),
                       ("| Tanh N |", "15.6"), ("| Sigmoid |", "82.61"), ("| Sigmoid N |", "-")):
        line = next(line for line in table.splitlines() if line.startswith(row))
        assert line.rstrip().endswith(f"| {paper} |"), line
    assert "examples seen" in table and "unbounded stream" in table


def test_glorot_numbers(glorot_run):
    _, results = glorot_run
    runs = results["runs"]
    assert len(runs) == 6
    n_layers = len(results["sizes"]) - 1
    for label, r in runs.items():
        assert r["diverged"] is None, label
        assert len(r["test_error"]) == results["config"]["epochs"]
        assert 0.0 <= r["final_test_error"] <= 100.0
        steps = r["probe_steps"]
        assert steps[0] == 0 and steps == sorted(steps) and len(steps) >= 3
        assert np.asarray(r["probes"]["std"]).shape == (len(steps), n_layers)
        assert len(r["mean_layer_singular_value"]) == n_layers
    # Glorot's observation at init: standard-init layer Jacobians are contracting (about 0.5), normalized ones
    # near the Marchenko-Pastur value 0.85; tanh's slopes keep the measurement at or below the D = I prediction.
    hidden = slice(1, n_layers - 1)  # layers whose input and output are both hidden (square)
    std = np.asarray(runs["tanh, standard"]["mean_layer_singular_value"])[hidden]
    norm = np.asarray(runs["tanh, normalized"]["mean_layer_singular_value"])[hidden]
    assert np.all(std < norm)
    assert np.all(std <= 1.05 * theory.mean_singular_value("uniform_fanin", 64, 64))
    assert np.all(norm <= 1.05 * theory.mean_singular_value("xavier_uniform", 64, 64))
    assert np.all(std > 0.35) and np.all(norm > 0.6)


@pytest.fixture(scope="module")
def he_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("he")
    status = main(["run", "he", "--quick", "--no-progress", "--out", str(out)])
    assert status == 0
    return out, json.loads((out / "he.json").read_text())


def test_he_outputs_and_gradient_variances(he_run):
    out, results = he_run
    assert (out / "loss.png").stat().st_size > 10_000 and (out / "gradient_variance.png").stat().st_size > 10_000
    runs = results["runs"]
    xavier, he = runs["Xavier, 30 layers"], runs["He, 30 layers"]
    for r in (xavier, he):
        measured = np.asarray(r["grad_var_at_init"])
        predicted = np.asarray(r["predicted_grad_var_at_init"])
        assert measured.shape == predicted.shape == (30,)
        assert predicted[-1] == measured[-1]  # the theory starts from the measured top layer
        # one network, a few hundred examples: each layer's estimate is within a factor 3 of the theory,
        # while Xavier's prediction falls by 2^-28 from top to bottom
        assert np.all(np.abs(np.log(measured / predicted)) < np.log(3.0)), (measured / predicted)
    assert xavier["grad_var_at_init"][0] < 1e-6 * xavier["grad_var_at_init"][-1]
    assert he["grad_var_at_init"][0] > 1e-2 * he["grad_var_at_init"][-1]
    assert runs["identity, 100 layers"]["predicted_grad_var_at_init"] is None
    for r in runs.values():
        assert len(r["step_loss"]) > 0 and r["seconds"] > 0


def test_experiments_reject_bad_learning_rate(tmp_path, capsys):
    for name in ("glorot", "he"):
        status, _, err = run_cli(["run", name, "--quick", "--lr", "-1", "--out", str(tmp_path)], capsys)
        assert status == 2 and "--lr must be positive" in err


def test_isometry_quick(tmp_path, capsys):
    status, out, err = run_cli(["run", "isometry", "--quick", "--out", str(tmp_path)], capsys)
    assert status == 0, err
    results = json.loads((tmp_path / "isometry.json").read_text())
    assert (tmp_path / "phase_diagram.png").exists() and (tmp_path / "eigenvalues.png").exists()
    n = len(results["config"]["sigmas"])
    for activation in ("hard_tanh", "relu"):
        grid = results["grids"][activation]
        assert np.asarray(grid["alpha"]).shape == (n, n)
        # 2 x 25 binomial fractions of 256 units each: 5 standard errors is a rare miss with the right formula,
        # and the poster's sign or the wrong binding layer would be off by tens of standard errors
        assert results["max_alpha_z"][activation] < 5.0
        assert results["max_eigenvalue_spread"][activation] < 1e-10
    assert "hard_tanh: largest |alpha - theory|" in out
    status, _, err = run_cli(["run", "isometry", "--quick", "--depth", "0", "--out", str(tmp_path)], capsys)
    assert status == 2 and "--depth must be a positive integer" in err


def test_identity_quick(tmp_path, capsys):
    status, out, err = run_cli(["run", "identity", "--quick", "--data", "shapeset", "--depth", "5", "--no-progress",
                                "--out", str(tmp_path)], capsys)
    assert status == 0, err
    results = json.loads((tmp_path / "identity.json").read_text())
    for name in ("layer_accuracy", "identity_distance", "contribution_maps", "class_contributions",
                 "jacobian_spectrum", "curves", "loss"):
        assert (tmp_path / f"{name}.png").exists(), name
    assert results["data"] == "shapeset" and results["config"]["depth"] == 5
    assert len(results["layer_accuracy"]) == 5 and all(0.0 <= a <= 1.0 for a in results["layer_accuracy"])
    distance = np.asarray(results["identity_distance"])
    assert distance.shape == (5,) and np.all(distance > 0) and np.all(distance < 0.5)
    jac = results["jacobian"]
    # at init J is diagonal with entries sigma^L = 1 or 0: the measured fraction of units that never saturate is
    # exactly the fraction of scaled inputs inside (-1, 1), which is what the data-based prediction counts
    assert set(np.round(np.ravel(jac["singular_values_init"]), 12)) <= {0.0, 1.0}
    assert jac["alpha_features_init_measured"] == pytest.approx(jac["alpha_predicted_from_data"], abs=1e-12)
    assert set(results["contrasts"]) == {"Xavier", "He", "orthogonal"}
    assert "mean relative identity distance" in out
    status, _, err = run_cli(["run", "identity", "--quick", "--q0", "0", "--out", str(tmp_path)], capsys)
    assert status == 2 and "--q0 must be positive" in err


def test_svcca_quick(tmp_path, capsys):
    status, out, err = run_cli(["run", "svcca", "--quick", "--no-progress", "--out", str(tmp_path)], capsys)
    assert status == 0, err
    for name in ("training", "two_networks", "identity_vs_xavier"):
        assert (tmp_path / f"{name}.png").exists(), name
    results = json.loads((tmp_path / "svcca.json").read_text())
    hidden = len(results["config"]["hidden"])
    steps = [results["recorded_steps"][str(f)] for f in results["fractions"]]
    assert steps[0] == 0 and steps == sorted(steps) and len(set(steps)) == 4
    for f, mats in results["over_training"].items():
        for metric, m in mats.items():
            m = np.asarray(m)
            assert m.shape == (hidden, hidden) and np.all(m >= -1e-9) and np.all(m <= 1 + 1e-9)
    # the final network against itself: every layer matches its own final state exactly
    np.testing.assert_allclose(results["over_training_diagonal"]["linear_cka"]["1.0"], 1.0, atol=1e-6)
    np.testing.assert_allclose(results["over_training_diagonal"]["svcca"]["1.0"], 1.0, atol=1e-6)
    two = results["two_networks"]
    assert all(len(two[k]) == hidden for k in ("raw_neurons", "svcca", "linear_cka"))
    deep = results["identity_vs_xavier"]
    assert set(deep) == {"identity", "Xavier"}
    assert all(len(r["to_input"]) == results["config"]["deep_depth"] - 1 for r in deep.values())
    assert "35% of training" in out
    freezing = results["freeze_training"]
    assert 0.0 <= freezing["backward_flops_saved"] < 1.0
    assert len(freezing["per_epoch"]) == 2 and all("similarity" in r for r in freezing["per_epoch"])
    assert "backward products saved" in out

