"""The sweep scripts' command line: bad input is one ``error: ...`` line and exit code 2 (before any
Ray work), and an explicit flag wins over the smoke-test preset."""
import pytest

from sweeps import abl_isolation, dhbe_lr


@pytest.mark.parametrize("flags, field, value", [
    (["--attack", "foo"], "attack", "foo"),
    (["--poison-rate", "2"], "poison_rate", "2.0"),
    (["--dataset", "npz", "--data-root", "/nonexistent/x.npz"], "data_root", "/nonexistent/x.npz"),
    (["--lr-min", "0.2", "--lr-max", "0.01"], "search_space[student_lr]", "(0.2, 0.01)"),
    (["--trigger-size", "40"], "trigger_size", "40"),
])
def test_bad_input_is_one_error_line_and_exit_code_2(flags, field, value, tmp_path, capsys):
    assert dhbe_lr.main(["--smoke-test", "--storage-path", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: invalid {field}=") and value in err[0]
    assert "expected" in err[0]  # what is allowed
    assert not any(tmp_path.iterdir())  # nothing was started or written


def test_an_explicit_num_samples_wins_over_the_smoke_preset():
    assert dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--smoke-test", "--num-samples", "6"]))[0].num_samples == 6
    assert dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--smoke-test"]))[0].num_samples == 2
    assert dhbe_lr.build_sweeps(dhbe_lr.parse_args([]))[0].num_samples == 6
    assert abl_isolation.build_sweeps(abl_isolation.parse_args(["--smoke-test", "--num-samples", "5"]))[0].num_samples == 5


def test_the_resolved_settings_are_described_before_any_training(tmp_path):
    sweep = dhbe_lr.build_sweeps(dhbe_lr.parse_args(["--smoke-test", "--num-samples", "3", "--executor", "tune",
                                                     "--storage-path", str(tmp_path)]))[0]
    line = sweep.describe()
    for part in ("dhbe on digits/small_cnn", "badnets at poison_rate 0.1", "epochs=2", "3 configuration(s)",
                 "optuna tpe over student_lr", "val_acc max, val_asr min, chosen on the validation split", "executor tune", str(tmp_path)):
        assert part in line


def test_search_flags_reach_the_sweep_and_bad_ones_fail_in_one_line(tmp_path, capsys):
    argv = ["--smoke-test", "--storage-path", str(tmp_path), "--seeds", "3", "--sampler", "nsga2",
            "--scheduler", "asha", "--objective", "der:max"]
    sweep = dhbe_lr.build_sweeps(dhbe_lr.parse_args(argv))[0]
    sweep.validate()
    assert (sweep.seeds, sweep.sampler, sweep.scheduler, tuple(sweep.objectives)) == (3, "nsga2", "asha",
                                                                                     (("der", "max"),))
    assert "x 3 seeds" in sweep.describe() and "early stopping asha" in sweep.describe()
    for bad, named in ((["--objective", "der:up"], "objective"), (["--scheduler", "asha"], "scheduler"),
                       (["--seeds", "0"], "seeds")):
        assert dhbe_lr.main(["--smoke-test", "--storage-path", str(tmp_path), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: invalid {named}="), err


def test_help_lists_every_registered_attack_dataset_and_model_and_unknown_names_get_the_nearest():
    import argparse

    from bdray.attacks.specs import ATTACKS
    from bdray.claims.__main__ import parse_args
    from bdray.config import ConfigError
    from bdray.data import DATASETS
    from bdray.models import MODELS
    from bdray.sweep.cli import add_common_args

    text = " ".join(add_common_args(argparse.ArgumentParser()).format_help().split())
    for registry in (ATTACKS, DATASETS, MODELS):
        missing = [name for name in registry.names() if name not in text]
        assert not missing, f"--help leaves out these {registry.kind}s: {missing}"
    assert "WRN-16-1" in text and "your image files" in text  # the one-line descriptions are there
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    with pytest.raises(ConfigError, match=r"nearest: badnets"):
        ATTACKS.get("badnet", field="attack")
