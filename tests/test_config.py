"""Study config: defaults, dotted overrides, --set parsing, validation, loading study files."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from runner.config import (
    AugmentConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    Study,
    TrainConfig,
    TrialConfig,
    apply_overrides,
    check_study,
    coerce,
    flatten,
    known_keys,
    load_study,
    parse_set,
    parse_value,
    validate,
    with_overrides,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*.py"))


# --------------------------------------------------------------------------- defaults


def test_defaults_reproduce_the_course_pipeline():
    cfg = TrialConfig()
    assert cfg.model.hidden == (512, 128)
    assert cfg.model.dropout == 0.0
    assert cfg.model.batchnorm is False
    assert cfg.model.init == "default"
    assert cfg.optim.name == "adam"
    assert cfg.optim.lr == 1e-3
    assert cfg.optim.weight_decay == 0.0
    assert cfg.train.batch_size == 32
    assert cfg.train.epochs == 10
    assert cfg.train.patience == 0  # no early stopping in the course
    assert cfg.data.image_size == 64
    assert cfg.data.path == "builtin:lesions"
    assert cfg.augment.train == (
        {"name": "HorizontalFlip", "p": 0.5},
        {"name": "RandomBrightnessContrast", "p": 0.2},
    )
    assert cfg.augment.mean == pytest.approx((0.485, 0.456, 0.406))
    assert cfg.augment.std == pytest.approx((0.229, 0.224, 0.225))
    assert cfg.resources.workers_per_trial == 0
    assert validate(cfg) == []


def test_known_keys_cover_every_field():
    keys = known_keys()
    assert "model.dropout" in keys and "optim.lr" in keys and "data.image_size" in keys
    assert "augment.train" in keys and "resources.gpus_per_worker" in keys
    cfg = TrialConfig()
    n_fields = sum(len(dataclasses.fields(getattr(cfg, f.name))) for f in dataclasses.fields(TrialConfig))
    assert len(keys) == n_fields


# --------------------------------------------------------------------------- overrides


def test_dotted_overrides_change_only_their_fields():
    base = TrialConfig()
    cfg = apply_overrides(base, {"model.dropout": 0.25, "optim.lr": 0.01, "model.hidden": [64, 32]})
    assert cfg.model.dropout == 0.25
    assert cfg.optim.lr == 0.01
    assert cfg.model.hidden == (64, 32)
    assert cfg.model.batchnorm is False
    assert cfg.train == base.train and cfg.data == base.data
    assert base.model.dropout == 0.0  # the original is untouched


def test_overrides_with_no_changes_return_equal_config():
    assert apply_overrides(TrialConfig(), {}) == TrialConfig()


def test_override_augment_list_of_dicts():
    cfg = apply_overrides(TrialConfig(), {"augment.train": [{"name": "VerticalFlip", "p": 1.0}]})
    assert cfg.augment.train == ({"name": "VerticalFlip", "p": 1.0},)
    cfg = apply_overrides(TrialConfig(), {"augment.train": []})
    assert cfg.augment.train == ()


def test_override_type_errors_are_config_errors_naming_key():
    with pytest.raises(ConfigError, match=r"train\.epochs=2\.5.*whole number"):
        apply_overrides(TrialConfig(), {"train.epochs": 2.5})
    with pytest.raises(ConfigError, match=r"model\.batchnorm.*true or false"):
        apply_overrides(TrialConfig(), {"model.batchnorm": 1})
    with pytest.raises(ConfigError, match=r"model\.hidden.*list"):
        apply_overrides(TrialConfig(), {"model.hidden": "512,128"})
    with pytest.raises(ConfigError, match=r"data\.path.*string"):
        apply_overrides(TrialConfig(), {"data.path": 5})


def test_all_bad_overrides_are_reported_together():
    with pytest.raises(ConfigError) as e:
        apply_overrides(TrialConfig(), {"model.dropot": 0.1, "train.epochs": "ten", "optim.lr": 0.1})
    msg = str(e.value)
    assert "model.dropot" in msg and "train.epochs" in msg
    assert "optim.lr" not in msg  # a good key is not reported


def test_unknown_key_suggests_close_name():
    with pytest.raises(ConfigError, match=r"unknown key 'model\.dropot'.*did you mean 'model\.dropout'"):
        apply_overrides(TrialConfig(), {"model.dropot": 0.1})
    with pytest.raises(ConfigError, match=r"did you mean 'data\.image_size'"):
        apply_overrides(TrialConfig(), {"data.imagesize": 32})


def test_unknown_key_without_section_suggests_section():
    with pytest.raises(ConfigError, match=r"did you mean 'optim\.lr'"):
        apply_overrides(TrialConfig(), {"lr": 0.1})


def test_unknown_section_lists_sections():
    with pytest.raises(ConfigError, match=r"known sections: data, augment, model, optim, train, resources"):
        apply_overrides(TrialConfig(), {"zzz.qqq": 1})


def test_right_name_in_wrong_section_suggests_the_right_section():
    with pytest.raises(ConfigError, match=r"did you mean 'optim\.lr'"):
        apply_overrides(TrialConfig(), {"train.lr": 0.1})


# --------------------------------------------------------------------------- --set parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("none", None),
        ("null", None),
        ("[256,128]", [256, 128]),
        ("[256, 128]", [256, 128]),
        ("builtin:digits", "builtin:digits"),
        ("~/images/skin", "~/images/skin"),
        ("/data/isic", "/data/isic"),
        ("adamw", "adamw"),
        ("'quoted'", "quoted"),
        ('{"name": "VerticalFlip", "p": 0.5}', {"name": "VerticalFlip", "p": 0.5}),
    ],
)
def test_parse_value(text, expected):
    got = parse_value(text)
    assert got == expected
    assert type(got) is type(expected)


def test_parse_set_builds_dotted_dict():
    got = parse_set(
        [
            "model.dropout=0.1",
            "train.epochs=3",
            "model.batchnorm=true",
            "model.hidden=[256,128]",
            "data.path=builtin:digits",
            " optim.name =sgd",
        ]
    )
    assert got == {
        "model.dropout": 0.1,
        "train.epochs": 3,
        "model.batchnorm": True,
        "model.hidden": [256, 128],
        "data.path": "builtin:digits",
        "optim.name": "sgd",
    }


def test_parse_set_value_may_contain_equals():
    assert parse_set(["data.path=/a=b"]) == {"data.path": "/a=b"}


@pytest.mark.parametrize("item", ["novalue", "=3", "  =x"])
def test_parse_set_malformed_is_config_error(item):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set([item])


def test_set_values_coerce_to_field_types():
    cfg = apply_overrides(
        TrialConfig(),
        parse_set(
            [
                "model.dropout=0.1",
                "train.epochs=3",
                "model.batchnorm=true",
                "model.hidden=[256,128]",
                "data.path=builtin:digits",
                "optim.lr=1",
                "train.batch_size=64.0",
                "augment.mean=[0,0,0]",
            ]
        ),
    )
    assert cfg.model.dropout == 0.1
    assert cfg.train.epochs == 3 and type(cfg.train.epochs) is int
    assert cfg.model.batchnorm is True
    assert cfg.model.hidden == (256, 128)
    assert cfg.data.path == "builtin:digits"
    assert cfg.optim.lr == 1.0 and type(cfg.optim.lr) is float
    assert cfg.train.batch_size == 64 and type(cfg.train.batch_size) is int
    assert cfg.augment.mean == (0.0, 0.0, 0.0) and all(type(m) is float for m in cfg.augment.mean)


@pytest.mark.parametrize(
    "value, tp, expected",
    [
        (3, int, 3),
        (3.0, int, 3),
        (2, float, 2.0),
        (True, bool, True),
        ("x", str, "x"),
        ([1, 2], tuple[int, ...], (1, 2)),
        ((0.5,), tuple[float, ...], (0.5,)),
        ({"a": 1}, dict, {"a": 1}),
    ],
)
def test_coerce_accepts(value, tp, expected):
    got = coerce(value, tp)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "value, tp",
    [
        (True, int),
        (2.5, int),
        ("3", int),
        (True, float),
        ("0.1", float),
        (1, bool),
        ("true", bool),
        (3, str),
        ("12", tuple[int, ...]),
        (5, tuple[int, ...]),
        ([1.5], tuple[int, ...]),
        ([1], dict),
    ],
)
def test_coerce_rejects(value, tp):
    with pytest.raises(ValueError):
        coerce(value, tp)


def test_set_nan_for_int_is_config_error():
    with pytest.raises(ConfigError, match="train.epochs"):
        apply_overrides(TrialConfig(), {"train.epochs": float("nan")})
    with pytest.raises(ConfigError, match="train.epochs"):
        apply_overrides(TrialConfig(), parse_set(["train.epochs=nan"]))  # "nan" parses as a string


def test_non_finite_numbers_are_rejected_when_set():
    for key in ("optim.lr", "model.dropout", "optim.weight_decay"):
        for bad in (float("inf"), float("nan")):
            with pytest.raises(ConfigError, match=rf"{key}=.*expected a finite number"):
                apply_overrides(TrialConfig(), {key: bad})


def test_set_infinite_int_is_config_error():
    with pytest.raises(ConfigError, match="train.epochs"):
        apply_overrides(TrialConfig(), parse_set(["train.epochs=1e999"]))


def test_parse_set_unhashable_literal_is_kept_as_text_then_rejected_by_type():
    # literal_eval raises TypeError building {[]: 1} (a list is no dict key): the value stays the plain string
    assert parse_value("{[]: 1}") == "{[]: 1}"
    got = parse_set(["augment.train={[]: 1}"])
    assert got == {"augment.train": "{[]: 1}"}
    with pytest.raises(ConfigError, match=r"^augment\.train='\{\[\]: 1\}': expected a list"):
        apply_overrides(TrialConfig(), got)


# --------------------------------------------------------------------------- validation


def test_validate_names_each_out_of_range_value():
    cfg = apply_overrides(
        TrialConfig(),
        {
            "model.dropout": 1.0,
            "optim.lr": 0.0,
            "train.epochs": 0,
            "data.image_size": 4,
            "model.init": "zeros",
            "optim.name": "rmsprop",
        },
    )
    problems = validate(cfg, "here")
    text = "\n".join(problems)
    for key in ("model.dropout", "optim.lr", "train.epochs", "data.image_size", "model.init", "optim.name"):
        assert key in text
    assert len(problems) == 6
    assert all("(here)" in p for p in problems)


@pytest.mark.parametrize(
    "overrides",
    [
        {"data.val_fraction": 0.0},
        {"data.val_fraction": 1.0},
        {"data.path": "  "},
        {"data.image_size": 513},
        {"augment.std": [0.2, 0.0, 0.2]},
        {"augment.mean": [0.5, 0.5]},
        {"augment.train": [{"p": 0.5}]},
        {"model.hidden": []},
        {"model.hidden": [0]},
        {"model.dropout": -0.1},
        {"optim.weight_decay": -1.0},
        {"optim.momentum": 1.0},
        {"train.batch_size": 0},
        {"train.patience": -1},
        {"train.checkpoint_every": -1},
        {"resources.workers_per_trial": -1},
        {"resources.cpus_per_worker": 0.0},
        {"resources.gpus_per_worker": -1.0},
        {"data.leakage": "ignore"},
        {"data.leakage": "Drop"},
    ],
)
def test_validate_rejects(overrides):
    assert len(validate(apply_overrides(TrialConfig(), overrides))) == 1


def test_validate_accepts_edges():
    cfg = apply_overrides(
        TrialConfig(),
        {"data.image_size": 8, "model.dropout": 0.0, "train.epochs": 1, "optim.momentum": 0.0, "augment.train": []},
    )
    assert validate(cfg) == []
    assert validate(apply_overrides(TrialConfig(), {"data.image_size": 512, "model.dropout": 0.99})) == []


def test_check_study_collects_every_problem_in_one_error():
    study = Study(
        name="bad",
        variants={
            "drop": {"model.dropout": 1.0},
            "lr": {"optim.lr": 0},
            "epochs": {"train.epochs": 0},
            "size": {"data.image_size": 4},
            "init": {"model.init": "zeros"},
            "opt": {"optim.name": "rmsprop"},
            "typo": {"model.dropot": 0.1},
        },
    )
    with pytest.raises(ConfigError) as e:
        check_study(study, where="bad.py")
    msg = str(e.value)
    for needle in (
        "model.dropout=1.0",
        "optim.lr=0.0",
        "train.epochs=0",
        "data.image_size=4",
        "model.init='zeros'",
        "optim.name='rmsprop'",
        "model.dropot",
    ):
        assert needle in msg, needle
    for variant in ("drop", "lr", "epochs", "size", "init", "opt", "typo"):
        assert f"variant '{variant}'" in msg
    assert "did you mean 'model.dropout'" in msg


def test_leakage_policy_default_and_choices():
    assert DataConfig().leakage == "warn"
    for policy in ("warn", "fail", "drop"):
        assert validate(apply_overrides(TrialConfig(), {"data.leakage": policy})) == []
    (problem,) = validate(apply_overrides(TrialConfig(), {"data.leakage": "skip"}))
    assert problem == "data.leakage='skip': choose one of warn, fail, drop"
    with pytest.raises(ConfigError, match=r"did you mean 'data\.leakage'"):
        apply_overrides(TrialConfig(), {"data.leak": "drop"})


@pytest.mark.parametrize(
    "base, needle",
    [
        (TrialConfig(model=ModelConfig(dropout="0.1")), "model.dropout='0.1': expected a finite number"),
        (TrialConfig(model=ModelConfig(hidden=64)), "model.hidden=64: expected a list"),
        (TrialConfig(train=TrainConfig(epochs=2.5)), "train.epochs=2.5: expected a whole number"),
        (TrialConfig(augment=AugmentConfig(train=("HorizontalFlip",))), "expected a dict"),
        (TrialConfig(model={"dropout": 0.1}), "base.model must be a ModelConfig(...), got dict"),
    ],
)
def test_check_study_rejects_wrong_types_in_the_base(base, needle):
    """A study file builds dataclasses directly, so nothing coerced its values: check_study does, naming the key."""
    with pytest.raises(ConfigError) as e:
        check_study(Study(name="s", base=base), where="x.py")
    assert needle in str(e.value) and str(e.value).startswith("x.py: ")


def test_check_study_coerces_base_values_to_field_types():
    study = Study(
        name="s",
        base=TrialConfig(
            data=DataConfig(path=Path("/data/skin"), image_size=32.0), model=ModelConfig(hidden=[64, 32], dropout=0)
        ),
    )
    ((_, _, cfg),) = check_study(study)
    assert cfg.data.path == "/data/skin" and type(cfg.data.image_size) is int
    assert cfg.model.hidden == (64, 32) and type(cfg.model.dropout) is float


def test_with_overrides_errors_name_set():
    with pytest.raises(ConfigError, match=r"^--set: model\.hidden='abc': expected a list"):
        with_overrides(Study(name="s"), parse_set(["model.hidden=abc"]))


def test_check_study_deduplicates_base_problems():
    study = Study(name="s", base=TrialConfig(train=TrainConfig(epochs=0)), variants={"a": {}, "b": {}})
    with pytest.raises(ConfigError) as e:
        check_study(study)
    assert str(e.value).count("train.epochs=0") == 2  # once per variant, each named
    assert "variant 'a'" in str(e.value) and "variant 'b'" in str(e.value)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(name="has space"), "name="),
        (dict(name=""), "name="),
        (dict(name="a/b"), "name="),
        (dict(name="s", variants={}), "variants"),
        (dict(name="s", seeds=()), "seeds"),
        (dict(name="s", seeds=(0, 0)), "duplicates"),
        (dict(name="s", seeds=(True,)), "seeds"),
        (dict(name="s", seeds=(0.5,)), "seeds"),
        (dict(name="s", reference="nope"), "reference"),
        (dict(name="s", variants={"a": [1]}), "variant 'a'"),
    ],
)
def test_check_study_structure(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        check_study(Study(**kwargs))


def test_check_study_rejects_non_study():
    with pytest.raises(ConfigError, match="must be a runner.config.Study"):
        check_study({"name": "x"})


def test_study_trials_are_variants_times_seeds_with_seed_set():
    study = Study(
        name="s",
        base=TrialConfig(model=ModelConfig(hidden=(32,))),
        variants={"a": {}, "b": {"model.dropout": 0.5}},
        seeds=(7, 3, 11),
    )
    trials = check_study(study)
    assert [(v, s) for v, s, _ in trials] == [("a", 7), ("a", 3), ("a", 11), ("b", 7), ("b", 3), ("b", 11)]
    for v, s, cfg in trials:
        assert cfg.train.seed == s
        assert cfg.model.hidden == (32,)
        assert cfg.model.dropout == (0.5 if v == "b" else 0.0)
    assert study.trials() == trials
    assert study.reference_variant == "a"
    assert dataclasses.replace(study, reference="b").reference_variant == "b"


def test_variant_seed_override_is_replaced_by_study_seed():
    study = Study(name="s", variants={"a": {"train.seed": 99}}, seeds=(1, 2))
    assert [cfg.train.seed for _, _, cfg in study.trials()] == [1, 2]


def test_with_overrides_applies_to_base_and_on_top_of_variants():
    study = Study(name="s", variants={"a": {"model.dropout": 0.5}, "b": {"train.epochs": 7}})
    assert with_overrides(study, {}) is study
    s2 = with_overrides(study, {"model.dropout": 0.1, "train.epochs": 2})
    assert s2.base.model.dropout == 0.1 and s2.base.train.epochs == 2
    by_variant = {v: cfg for v, _, cfg in check_study(s2)}
    assert by_variant["a"].model.dropout == 0.1  # --set wins over the variant
    assert by_variant["b"].train.epochs == 2
    assert study.variants["a"] == {"model.dropout": 0.5}  # the original is untouched
    with pytest.raises(ConfigError, match="did you mean"):
        with_overrides(study, {"model.dropot": 0.1})


# --------------------------------------------------------------------------- round trip


def test_to_dict_from_dict_round_trip():
    cfg = TrialConfig(
        data=DataConfig(path="builtin:digits", image_size=16, val_fraction=0.3, split_seed=4),
        augment=AugmentConfig(
            train=({"name": "VerticalFlip", "p": 0.3},), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
        ),
        model=ModelConfig(hidden=(64, 32, 16), dropout=0.2, batchnorm=True, init="xavier_uniform"),
        optim=OptimConfig(name="sgd", lr=0.05, weight_decay=1e-4, momentum=0.8),
        train=TrainConfig(epochs=3, batch_size=17, patience=2, seed=9),
    )
    d = cfg.to_dict()
    assert d["model"]["hidden"] == [64, 32, 16]  # tuples become lists
    assert d["augment"]["train"] == [{"name": "VerticalFlip", "p": 0.3}]
    d2 = json.loads(json.dumps(d))  # JSON-serializable
    back = TrialConfig.from_dict(d2)
    assert back == cfg
    assert TrialConfig.from_dict(TrialConfig().to_dict()) == TrialConfig()


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="model.dropot"):
        TrialConfig.from_dict({"model": {"dropot": 0.1}})


def test_flatten_keeps_list_and_dict_values_whole():
    assert flatten({"model": {"hidden": [1, 2]}, "augment": {"train": [{"name": "X"}]}}) == {
        "model.hidden": [1, 2],
        "augment.train": [{"name": "X"}],
    }


# --------------------------------------------------------------------------- load_study


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_study_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_study(tmp_path / "nope.py")


def test_load_study_directory_is_not_a_file(tmp_path):
    with pytest.raises(ConfigError, match="is a directory; give a study file inside it"):
        load_study(tmp_path)


def test_load_study_non_python_file(tmp_path):
    p = _write(tmp_path, "study.yaml", "name: x\n")
    with pytest.raises(ConfigError, match="is a Python file"):
        load_study(p)


def test_load_study_syntax_error_reports_file_and_line(tmp_path):
    p = _write(tmp_path, "syn.py", "from runner.config import Study\n\nstudy = Study(name='x',,)\n")
    with pytest.raises(ConfigError) as e:
        load_study(p)
    assert f"{p}:3: syntax error" in str(e.value)


def test_load_study_without_study(tmp_path):
    p = _write(tmp_path, "empty.py", "x = 1\n")
    with pytest.raises(ConfigError, match="defines no `study`"):
        load_study(p)


def test_load_study_exception_reports_line(tmp_path):
    p = _write(tmp_path, "boom.py", "from runner.config import Study\nx = 1\nx = 1 / 0\nstudy = Study(name='x')\n")
    with pytest.raises(ConfigError) as e:
        load_study(p)
    assert str(e.value).startswith(f"{p}:3: ZeroDivisionError")


def test_load_study_bad_dataclass_argument_reports_line(tmp_path):
    p = _write(
        tmp_path,
        "kw.py",
        "from runner.config import Study, TrialConfig, ModelConfig\n\n\n"
        "study = Study(name='x', base=TrialConfig(model=ModelConfig(dropot=0.1)))\n",
    )
    with pytest.raises(ConfigError, match=rf"{p}:4: ModelConfig\(\) has no field 'dropot'; did you mean dropout=\?"):
        load_study(p)


def test_load_study_config_error_inside_file_names_file(tmp_path):
    p = _write(
        tmp_path,
        "ce.py",
        "from runner.config import TrialConfig, apply_overrides\n"
        "base = apply_overrides(TrialConfig(), {'model.dropot': 0.1})\n",
    )
    with pytest.raises(ConfigError, match=rf"^{p}: unknown key 'model.dropot'"):
        load_study(p)


def test_load_study_exception_reports_line_for_relative_path(tmp_path, monkeypatch):
    _write(tmp_path, "boom.py", "x = 1\nraise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^boom\.py:2: RuntimeError: boom"):
        load_study("boom.py")


def test_load_study_returns_study(tmp_path):
    p = _write(tmp_path, "ok.py", "from runner.config import Study\nstudy = Study(name='ok', seeds=(1, 2))\n")
    study = load_study(str(p))
    assert isinstance(study, Study) and study.name == "ok" and study.seeds == (1, 2)


# --------------------------------------------------------------------------- shipped configs


def test_there_are_shipped_configs():
    names = {p.name for p in SHIPPED}
    assert {"baseline.py", "init_study.py", "regularization_study.py", "smoke.py"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_loads_and_validates(path):
    study = load_study(path)
    trials = check_study(study, where=str(path))
    assert len(trials) == len(study.variants) * len(study.seeds)
    assert study.name == path.stem
    for _, seed, cfg in trials:
        assert validate(cfg) == []
        assert cfg.train.seed == seed
        assert TrialConfig.from_dict(cfg.to_dict()) == cfg


def test_baseline_config_is_the_course_pipeline():
    study = load_study(REPO / "configs" / "baseline.py")
    assert study.base == TrialConfig()
    assert len(check_study(study)) == 3


def test_init_study_covers_every_init():
    from runner.config import INITS

    study = load_study(REPO / "configs" / "init_study.py")
    inits = {cfg.model.init for _, _, cfg in check_study(study)}
    assert inits == set(INITS)
    assert study.reference_variant == "default"


def test_shipped_configs_load_with_relative_path(monkeypatch):
    monkeypatch.chdir(REPO)
    assert load_study(os.path.join("configs", "smoke.py")).name == "smoke"
