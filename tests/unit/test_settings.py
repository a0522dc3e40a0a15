"""Settings and marker arguments: each bad value names where it came from and what to write."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pytest_autoresearch.settings import (
    AUTO,
    BENCHMARK_METRIC,
    Spec,
    benchmark_stat,
    min_delta_value,
    non_negative_float,
    parse_marker,
    positive_float,
)


@pytest.mark.parametrize(("validator", "text", "value"), [
    (positive_float, "600", 600.0), (positive_float, " 1.5", 1.5),
    (non_negative_float, "0", 0.0),
    (min_delta_value, "auto", AUTO), (min_delta_value, " AUTO ", AUTO), (min_delta_value, "0.01", 0.01),
    (benchmark_stat, "Median", "median"), (benchmark_stat, "", None),
])
def test_good_values(validator: Any, text: str, value: object) -> None:
    assert validator(text, "ini x") == value


@pytest.mark.parametrize(("validator", "text", "message"), [
    (positive_float, "ten", "ini x: expected a positive number such as 600, got 'ten'"),
    (positive_float, "0", "ini x: must be a positive number, got '0'"),
    (positive_float, "inf", "ini x: must be a positive number, got 'inf'"),
    (non_negative_float, "-1", "ini x: must be a finite number >= 0, got '-1'"),
    (min_delta_value, "lots", 'ini x: expected a number such as 0.001 or "auto", got \'lots\''),
    (benchmark_stat, "p99", "ini x: expected one of min, median, mean, got 'p99'"),
])
def test_bad_values_name_the_place_and_the_fix(validator: Any, text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        validator(text, "ini x")
    assert str(info.value) == message


def test_marker_positional_and_keyword() -> None:
    spec = parse_marker(("val_bpb", "max"), {"threshold": 2, "script": "train.py", "args": ["--fast"],
                                             "env": {"SEED": "1"}, "min_delta": "auto"}, "marker on t")
    assert spec == Spec("val_bpb", "max", 2.0, AUTO, "train.py", ("--fast",), {"SEED": "1"})


def test_a_data_server_keeps_a_budget() -> None:
    spec = parse_marker(("val_bpb",), {"script": "train.py", "data_server": "pytest_autoresearch.lm.dataloader:serve",
                                       "budget": 300, "export_allowance": 30}, "marker on test_train")
    assert (spec.data_server, spec.budget, spec.export_allowance) == ("pytest_autoresearch.lm.dataloader:serve", 300.0, 30.0)


def test_a_pytest_benchmark_test_may_leave_the_metric_out() -> None:
    spec = parse_marker((), {"protected": True, "threshold": 0.5}, "marker on t", benchmark=True)
    assert (spec.metric, spec.protected, spec.threshold) == (BENCHMARK_METRIC, True, 0.5)
    with pytest.raises(ValueError, match="a metric name is required"):
        parse_marker((), {"protected": True}, "marker on t")


@pytest.mark.parametrize(("args", "kwargs", "fragment"), [
    ((), {}, "a metric name is required"),
    (("m", "min", "x"), {}, "too many positional arguments"),
    (("m",), {"metric": "m"}, "metric given twice"),
    (("m",), {"goal": "lower"}, 'goal must be "min" or "max"'),
    (("m",), {"treshold": 1}, "unknown argument(s) treshold"),
    (("m",), {"threshold": math.nan}, "threshold must be a finite number"),
    (("m",), {"min_delta": -1}, "min_delta must be >= 0"),
    (("m",), {"args": "--fast"}, "args must be a list of strings"),
    (("m",), {"env": {"SEED": 1}}, "env must map strings to strings"),
    (("m",), {"script": "t.py", "data_server": "batches", "budget": 5}, 'data_server must be "module:function"'),
    (("m",), {"script": "t.py", "data_server": "b:serve"}, "give script=, data_server= and budget= together"),
    (("m",), {"data_server": "b:serve", "budget": 5}, "give script=, data_server= and budget= together"),
    (("m",), {"script": "t.py", "data_server": "b:serve", "budget": 0}, "budget is the training time in seconds"),
    (("m",), {"script": "t.py", "budget": 5, "data_server": "b:serve", "export_allowance": -1},
     "export_allowance is the seconds after budget="),
    (("m",), {"script": "t.py", "export_allowance": 5}, "with data_server= and budget="),
    (("m",), {"protected": "yes"}, "protected must be True or False"),
])
def test_bad_marker_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_marker(args, kwargs, "marker on test_train")
    assert str(info.value).startswith("marker on test_train: ") and fragment in str(info.value)
