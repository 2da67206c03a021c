"""Bad input is refused before anything starts, in one line naming the key or file, exit code 2, no
traceback, nothing stored or touched (issue 10, item 7): out-of-range values, sizes that cannot fit in
memory, unusable preset names and files, foreign or empty `run.h5` files beside valid runs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from cltui.cli import app
from engine import events as ev
from engine.config import config_to_dict
from engine.errors import ConfigError, RunStoreError
from engine.presets import load_preset
from engine.series import TRAINING_SERIES
from engine.store import RunStore, RunWriter, read_run

runner = CliRunner()


def cli(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args), catch_exceptions=False)


def error_line(result, *needles: str) -> str:  # noqa: ANN001
    """The result is exit code 2 with exactly one non-empty output line, an error holding every needle."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# -- out-of-range values: `cltui run` refuses them before creating anything ------------------------------

RANGE_CASES = [
    # (overrides, the message the line must hold: the full key and the value)
    (["training.lr=inf"], "training.lr = inf is not a finite number"),
    (["training.lr=-inf"], "training.lr = -inf is not a finite number"),
    (["training.lr=1e400"], "training.lr = inf is not a finite number"),  # TOML reads 1e400 as inf
    (["training.lr=1e38"], "training.lr = 1e+38 must be > 0 and at most 1e+06"),  # Adam's step overflowed float32
    (["method.name=ewc", "method.ewc_lambda=nan"], "method.ewc_lambda = nan is not a finite number"),
    (["method.name=hnet", "method.beta=nan"], "method.beta = nan is not a finite number"),
    (["method.name=si", "method.si_lambda=-1"], "method.si_lambda = -1.0 must be >= 0"),
    (["reference.during=nan"], "reference.during = nan is not a finite number"),
    (["benchmark.train_per_task=-7"], "benchmark.train_per_task = -7 must be -1 (all) or >= 1"),
    (["benchmark.train_per_task=0"], "benchmark.train_per_task = 0 must be -1 (all) or >= 1"),
    (["threads=-3"], "threads = -3 must be 0"),
    (["threads=100000"], "threads = 100000 must be 0 (torch's default) to 1024"),
    (["seed=-1"], "seed = -1 must be >= 0"),
    (["seed=99999999999999999999"], "seed = 99999999999999999999 is out of range"),
    (["training.batch_size=100000000"], "training.batch_size = 100000000 is larger than 60,000"),
    (["evaluation.batch_size=0"], "evaluation.batch_size = 0 must be 1 to 60,000"),
    (["training.adam_beta1=1.0"], "training.adam_beta1 = 1.0 must be in [0, 1)"),
    (["training.adam_beta2=-0.1"], "training.adam_beta2 = -0.1 must be in [0, 1)"),
    (["training.val_fraction=1.0"], "training.val_fraction = 1.0 must be in [0, 1)"),
    (["training.epochs_per_task=-1"], "training.epochs_per_task = -1 must be >= 0"),
    (["training.clip_grad_norm=0"], "training.clip_grad_norm = 0.0 must be > 0, or -1 (off)"),
    (["training.momentum=-0.5"], "training.momentum = -0.5 must be >= 0"),
    (["method.name=masking", "method.mask_fraction=1.0"], "method.mask_fraction = 1.0 must be in [0, 1)"),
    (["method.name=ewc", "method.n_fisher=-5"], "method.n_fisher = -5 must be -1 (all) or >= 1"),
    (["method.name=coresets", "method.replay_batch=-2"], "method.replay_batch = -2 must be -1"),
    (["analyses.curves.every=0"], "analyses.curves.every = 0 must be >= 1"),
    (["benchmark.name=permuted_mnist", "benchmark.permutation_seed=-1"], "benchmark.permutation_seed = -1 must be 0 to 2^32 - 1"),
    # sizes that cannot fit in memory: estimated from the options alone and refused
    (["model.hidden=[100000000, 100000000]"], "model.hidden = [100000000, 100000000] needs at least"),
    (["method.name=hnet", "method.chunk_size=100000000000"], "method.chunk_size = 100000000000 needs at least"),
    (["model.name=lstm", "model.hidden=100000000"], "model.hidden = 100000000 needs at least"),
]


@pytest.mark.parametrize("overrides, message", RANGE_CASES, ids=[" ".join(c[0]) for c in RANGE_CASES])
def test_out_of_range_value_is_refused_naming_its_key(tmp_path: Path, overrides: list[str], message: str) -> None:
    runs = tmp_path / "runs"
    args = [a for o in overrides for a in ("--set", o)]
    line = error_line(cli("run", "demo", *args, "--runs-dir", str(runs), "--no-live"), "--set: ", message)
    if "needs at least" in message:
        assert "GiB" in line and "of memory" in line
    assert not runs.exists()  # refused before the runs directory was even made
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_preset("demo", overrides)  # the engine's own entry point says the same


def test_ssmnist_data_too_large_for_memory_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        load_preset("ssmnist/finetune-m1", ["benchmark.n_train=1000000000000"])
    assert "benchmark.n_train = 1000000000000 needs at least" in str(e.value) and "\n" not in str(e.value)


def test_range_error_in_a_preset_file_names_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nlr = nan\n")
    error_line(cli("run", str(bad), "--runs-dir", str(tmp_path / "runs")), f"{bad}: training.lr = nan is not a finite number")
    bad.write_text("[benchmark]\ntrain_per_task = -7\n")
    error_line(cli("run", str(bad), "--runs-dir", str(tmp_path / "runs")), f"{bad}: benchmark.train_per_task = -7")
    assert not (tmp_path / "runs").exists()


def test_too_many_seeds_past_the_largest_seed(tmp_path: Path) -> None:
    error_line(cli("run", "demo", "--seed", str(2**63 - 1), "--seeds", "2", "--runs-dir", str(tmp_path / "r")),
               "would pass 2^63 - 1")
    assert not (tmp_path / "r").exists()


# -- unusable preset names and files --------------------------------------------------------------------

def test_preset_name_over_255_characters(tmp_path: Path) -> None:
    name = "x" * 300
    line = error_line(cli("run", name, "--runs-dir", str(tmp_path / "runs")), "is not a valid file name",
                      "(300 characters)")
    assert len(line) < 300  # the name is cut, not printed whole
    error_line(cli("run", name + ".toml", "--runs-dir", str(tmp_path / "runs")), "is not a valid file name")
    error_line(cli("presets", "show", name), "is not a valid file name")
    error_line(cli("run", "y" * 252, "--runs-dir", str(tmp_path / "runs")), "File name too long")  # +".toml" > 255
    assert not (tmp_path / "runs").exists()


def test_non_utf8_preset_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('description = "café"\n'.encode("latin-1"))
    error_line(cli("run", str(bad), "--runs-dir", str(tmp_path / "runs")), str(bad), "not a UTF-8 text file (byte 18)")
    assert not (tmp_path / "runs").exists()


def test_binary_preset_file(tmp_path: Path) -> None:
    blob = tmp_path / "blob.toml"
    blob.write_bytes(bytes(range(256)) * 8)
    error_line(cli("run", str(blob), "--runs-dir", str(tmp_path / "runs")), str(blob), "not a UTF-8 text file")
    ascii_blob = tmp_path / "nul.toml"
    ascii_blob.write_bytes(b"\x00\x01\x02name = 1\x00")
    error_line(cli("run", str(ascii_blob), "--runs-dir", str(tmp_path / "runs")), str(ascii_blob), "invalid TOML")
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# " + b"x" * (2 << 20))
    error_line(cli("run", str(huge), "--runs-dir", str(tmp_path / "runs")), str(huge), "over 1 MiB, not a preset")
    assert not (tmp_path / "runs").exists()


def test_deeply_nested_toml(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("v = " + "[" * 5000)
    error_line(cli("run", str(deep), "--runs-dir", str(tmp_path / "runs")), str(deep), "nested too deeply")
    error_line(cli("run", "demo", "--set", "training.lr=" + "[" * 5000, "--runs-dir", str(tmp_path / "runs")),
               "--set training.lr: the value is nested too deeply")
    assert not (tmp_path / "runs").exists()


def test_directory_given_as_preset(tmp_path: Path) -> None:
    for d in (tmp_path / "somedir", tmp_path / "looks-like.toml"):
        d.mkdir()
        error_line(cli("run", str(d), "--runs-dir", str(tmp_path / "runs")), f"{d} is a directory")
    other = tmp_path / "preset.txt"
    other.write_text("x = 1")
    error_line(cli("run", str(other), "--runs-dir", str(tmp_path / "runs")), "is not a .toml file")
    assert not (tmp_path / "runs").exists()


# -- foreign or empty run.h5 files beside valid runs ------------------------------------------------------

def _valid_run(root: Path, run_id: str, group: str = "") -> Path:
    cfg = config_to_dict(load_preset("demo"))
    w = RunWriter.create(root / run_id, run_id=run_id, config=cfg, environment={"device": "cpu"},
                         task_names=["0/1", "2/3"], phase_tasks=[[0], [1]], phase_steps=[5, 5],
                         series=TRAINING_SERIES, group=group)
    w(ev.InitialEvaluated([50.0, 50.0]))
    w(ev.PhaseEvaluated(0, [99.0, 50.0], 1.0))
    w(ev.PhaseEvaluated(1, [95.0, 98.0], 1.0))
    w(ev.RunFinished({"during": 98.5, "final": 96.5}, 2.0))
    w.close()
    return root / run_id


FOREIGN = {
    "empty": "is empty (0 bytes), not a cltui run record",
    "text": "is not an HDF5 file, so not a cltui run record",
    "foreign-h5": "is an HDF5 file without cltui's run layout, not a cltui run record",
    "damaged": "cannot read run record",
}


def _foreign_runs(root: Path) -> dict[str, Path]:
    """One of each: a zero-byte run.h5, a text file, another program's HDF5 file, and one with our
    `format_version` attribute but garbage where the layout should be."""
    paths = {}
    for name in FOREIGN:
        (root / name).mkdir(parents=True)
        paths[name] = root / name / "run.h5"
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("this is not a run\n")
    with h5py.File(paths["foreign-h5"], "w") as f:
        f["data"] = [1, 2, 3]
        f.attrs["group"] = "g"  # what `show GROUP` used to read without checking
    with h5py.File(paths["damaged"], "w") as f:
        for k in ("run_id", "created", "preset", "benchmark", "method", "model", "group", "metric_names"):
            f.attrs[k] = "x"
        f.attrs["format_version"] = 2
        f.attrs["seed"] = 0
        f.attrs["task_names"] = "{not json"
    return paths


def _digests(root: Path) -> dict[str, str]:
    """Every stored file's hash, but the lock and the run index (a cache the store rewrites, never the truth)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in ("writer.lock", ".run-index.pkl")}


def test_foreign_run_files_never_hide_valid_runs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    good = _valid_run(root, "20250101-000000-demo-s0", group="grp-x2")
    _valid_run(root, "20250101-000001-demo-s1", group="grp-x2")
    foreign = _foreign_runs(root)
    before = _digests(root)
    rd = ["--runs-dir", str(root)]

    r = cli("runs", *rd)  # lists both valid runs, and says which files it skipped and why
    assert r.exit_code == 0, r.output
    assert good.name in r.output and "20250101-000001-demo-s1" in r.output
    for name, why in FOREIGN.items():
        assert f"skipped: {foreign[name]}" in r.output or f"skipped: cannot read run record {foreign[name]}" in r.output
        assert why in r.output
    assert "Traceback" not in r.output

    r = cli("show", good.name, *rd)  # a valid run shows as usual
    assert r.exit_code == 0 and "during" in r.output, r.output
    r = cli("show", "grp-x2", *rd)  # a seed group too (this crashed on any foreign file)
    assert r.exit_code == 0 and "seed group grp-x2 (2 runs)" in r.output, r.output
    r = cli("export", good.name, "--format", "csv", *rd)
    assert r.exit_code == 0 and r.output.splitlines()[0] == "after_phase,0/1,2/3", r.output

    for name, why in FOREIGN.items():  # naming a foreign one: one line naming its file
        for cmd in (["show", name], ["export", name], ["resume", name]):
            error_line(cli(*cmd, *rd), str(foreign[name]), why)
    assert _digests(root) == before  # nothing was touched


def test_read_run_raises_only_run_store_errors(tmp_path: Path) -> None:
    """The store's readers (CLI, TUI poller, compare, live) rely on this: any bad file is a RunStoreError."""
    foreign = _foreign_runs(tmp_path)
    for name, why in FOREIGN.items():
        with pytest.raises(RunStoreError, match=re.escape(why)):
            read_run(foreign[name].parent)
    skipped: list[str] = []
    assert RunStore(tmp_path).records(skipped=skipped) == [] and len(skipped) == len(FOREIGN)
    assert RunStore(tmp_path).group_members("g") == []


def test_tui_poller_lists_valid_runs_beside_foreign_files(tmp_path: Path) -> None:
    from cltui.tui.records import RunPoller

    good = _valid_run(tmp_path, "20250101-000000-demo-s0")
    _foreign_runs(tmp_path)
    recs = RunPoller(RunStore(tmp_path)).poll()
    assert [r.run_id for r in recs] == [good.name]
    full = read_run(good, with_series=False)  # the poller lists summaries (engine.run_index) of real records
    assert (recs[0].preset, recs[0].status, recs[0].metrics["final"]) == (full.preset, "finished", 96.5)
