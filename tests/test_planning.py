"""engine.planning: seeds × grid expansion, seed-group ids, override hashes and grid parsing."""

from __future__ import annotations

import re

import pytest

from engine.errors import ConfigError
from engine.planning import format_value, override_hash, parse_grid, plan, split_values


def test_seeds_as_a_count_start_at_the_preset_or_given_seed() -> None:
    runs = plan("demo", ["training.lr=0.01"], 3, stamp="20260101-000000")
    assert [r.config.seed for r in runs] == [0, 1, 2]
    assert all(r.config.training.lr == 0.01 for r in runs)
    assert len({r.group for r in runs}) == 1
    assert re.fullmatch(r"20260101-000000-demo-x3-[0-9a-f]{4}", runs[0].group)
    assert [r.config.seed for r in plan("demo", [], 2, seed=10)] == [10, 11]
    assert [r.config.seed for r in plan("demo", ["seed=5"], 2)] == [5, 6]


def test_explicit_seed_list_and_a_lone_run_has_no_group() -> None:
    assert [r.config.seed for r in plan("demo", [], [7, 3])] == [7, 3]
    (lone,) = plan("demo")
    assert lone.group == "" and lone.overrides == () and lone.config.name == "demo"


def test_grid_times_seeds_in_order_each_point_its_own_group() -> None:
    runs = plan("demo", ["training.batch_size=16"], 2,
                {"training.lr": [0.1, 0.01, 0.001], "model.hidden": [[8], [16, 16]]})
    assert len(runs) == 3 * 2 * 2
    # First grid key slowest, seeds innermost.
    got = [(r.config.training.lr, r.config.model.options.hidden, r.config.seed) for r in runs]
    assert got[:4] == [(0.1, [8], 0), (0.1, [8], 1), (0.1, [16, 16], 0), (0.1, [16, 16], 1)]
    assert got[-1] == (0.001, [16, 16], 1)
    assert all(r.config.training.batch_size == 16 for r in runs)
    groups = [r.group for r in runs]
    assert len(set(groups)) == 6 and groups[0] == groups[1] != groups[2]
    assert runs[2].overrides == ("training.batch_size=16", "training.lr=0.1", "model.hidden=[16, 16]")
    # The hash follows the overrides: equal within a point, different across points.
    assert runs[0].tag == runs[1].tag != runs[2].tag
    assert len({r.tag for r in runs}) == 6


def test_override_hash_is_order_free_whitespace_free_and_ignores_the_seed() -> None:
    h = override_hash(["training.lr=0.1", "method.lambda=10"])
    assert re.fullmatch(r"[0-9a-f]{4}", h)
    assert override_hash(["method.lambda = 10", "training.lr=0.1", "seed=4"]) == h
    assert override_hash(["training.lr=0.2", "method.lambda=10"]) != h
    assert override_hash([]) == override_hash(["seed=3"])


def test_grid_parsing_keeps_brackets_and_quotes_together() -> None:
    assert split_values("[1,2],[3], 'a,b'") == ["[1,2]", "[3]", "'a,b'"]
    assert parse_grid(["training.lr=0.1,0.01", "model.hidden=[8,8],[16]"]) == {
        "training.lr": ["0.1", "0.01"], "model.hidden": ["[8,8]", "[16]"]}
    assert format_value(True) == "true" and format_value([8, 8]) == "[8, 8]" and format_value("sgd") == "sgd"
    runs = plan("demo", [], 1, parse_grid(["model.hidden=[8,8],[16]"]))
    assert [r.config.model.options.hidden for r in runs] == [[8, 8], [16]]


@pytest.mark.parametrize("call, text", [
    (lambda: parse_grid(["training.lr"]), "expected KEY=V1,V2"),
    (lambda: parse_grid(["seed=1,2"]), "--seeds"),
    (lambda: parse_grid(["training.lr=1", "training.lr=2"]), "given twice"),
    (lambda: plan("demo", [], 0), "--seeds 0"),
    (lambda: plan("demo", [], [1, 1]), "at most once"),
    (lambda: plan("demo", [], 1, {"training.lrr": [0.1]}), "unknown key 'training.lrr'"),
    (lambda: plan("demo", [], 1, {"training.lr": ["fast"]}), "should be float"),
    (lambda: plan("demo", [], 600, {"training.lr": [0.1, 0.2]}), "at most 1000"),
])
def test_bad_plans_fail_with_one_line_before_anything_starts(call, text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(text)):
        call()


def test_grid_points_never_share_a_group_even_when_the_random_part_repeats(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import engine.planning as planning

    tokens = iter(["aaaa", "aaaa", "bbbb", "aaaa", "cccc"])  # the 2nd draw repeats the 1st
    monkeypatch.setattr(planning.secrets, "token_hex", lambda n: next(tokens))
    runs = plan("demo", [], 2, {"training.lr": [0.1, 0.01, 0.001]})
    assert [r.group[-4:] for r in runs] == ["aaaa", "aaaa", "bbbb", "bbbb", "cccc", "cccc"]
