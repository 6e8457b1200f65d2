"""params.yaml is the single source of every value: a missing, unknown or mistyped key is an error naming it."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from dermeval.model.config import TrainConfig, TrainConfigError
from dermeval.params import Params, ParamsError, load_params

REPO = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def test_repo_params_load():
    p = load_params(REPO / "params.yaml")
    assert p.prepare.source == "auto" and p.data.prepared == "data/prepared"
    assert isinstance(p.train, TrainConfig) and p.train.lr == RAW["train"]["lr"]


def _without(section: str, key: str) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    del raw[section][key]
    return raw


def _with(section: str, key: str, value) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw[section][key] = value
    return raw


@pytest.mark.parametrize("raw,key", [
    (_with("prepare", "sedd", 3), "prepare.sedd"),
    (_with("prepare", "cases", "many"), "prepare.cases"),
    (_with("prepare", "source", "s3"), "prepare.source"),
    ({**RAW, "bogus": {"a": 1}}, "bogus"),
    (_without("train", "lr"), "train.lr: missing"),
    (_without("train", "ood_quantile"), "train.ood_quantile: missing"),
    (_with("train", "lerning_rate", 0.1), "train.lerning_rate: unknown"),
    (_with("train", "epochs", "80"), "train.epochs"),
    (_with("train", "dropout", 1.5), "train.dropout"),
    (_without("monitor", "safety_floor"), "monitor.safety_floor: missing"),
    (_without("data", "model"), "data.model: missing"),
    ({k: v for k, v in RAW.items() if k != "judge"}, "judge: missing section"),
])
def test_bad_params_name_the_key(tmp_path, raw, key):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        load_params(path)


def test_the_training_configuration_has_no_code_defaults():
    """Every training setting comes from params.yaml: the model has no field a missing key could fall back on."""
    with pytest.raises(TrainConfigError, match="train.epochs: missing"):
        TrainConfig.parse({k: v for k, v in RAW["train"].items() if k != "epochs"})
    assert all(f.is_required() for f in TrainConfig.model_fields.values())
    assert set(TrainConfig.model_fields) == set(RAW["train"])


def test_a_whole_number_is_read_as_a_float_where_one_is_expected():
    assert TrainConfig.parse({**RAW["train"], "lr": 1}).lr == 1.0


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        out[f.name] = _defaults(type(default)) if dataclasses.is_dataclass(default) else default
    return out


def test_the_sections_hand_built_defaults_equal_params_yaml():
    """Code that builds a section by hand (tests) gets the project's own values, never a second set."""
    loaded = load_params(REPO / "params.yaml")
    for f in dataclasses.fields(Params):
        if f.name == "train":
            continue
        section = getattr(loaded, f.name)
        assert _defaults(type(section)) == dataclasses.asdict(section), f.name
