"""The MLP, its weight inits, the optimizer factory, train/eval loops, early stopping and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from runner.config import (
    AugmentConfig,
    ConfigError,
    ModelConfig,
    OptimConfig,
    Study,
    TrainConfig,
    TrialConfig,
    check_study,
)
from runner.data.augment import Augment, normalize
from runner.trial.engine import EarlyStopping, build_optimizer, evaluate, train_epoch
from runner.trial.metrics import classification_report, confusion
from runner.trial.model import build_model

CPU = torch.device("cpu")
NO_AUG = AugmentConfig(train=())


def _kinds(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.net]


# --------------------------------------------------------------------------- model


def test_default_model_is_the_course_mlp():
    model = build_model(ModelConfig(), 64 * 64 * 3, 9)
    assert _kinds(model) == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12288, 512), (512, 128), (128, 9)]
    out = model(torch.zeros(2, 64, 64, 3))
    assert out.shape == (2, 9)


def test_model_with_dropout_and_batchnorm():
    model = build_model(ModelConfig(hidden=(32, 16, 8), dropout=0.3, batchnorm=True), 48, 4)
    assert _kinds(model) == [
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert all(m.p == 0.3 for m in model.net if isinstance(m, nn.Dropout))
    assert [m.num_features for m in model.net if isinstance(m, nn.BatchNorm1d)] == [32, 16, 8]
    assert model.net[-1].out_features == 4
    assert model(torch.zeros(3, 4, 4, 3)).shape == (3, 4)


def test_model_dropout_only_and_batchnorm_only():
    assert _kinds(build_model(ModelConfig(hidden=(8,), dropout=0.1), 12, 2)) == [
        "Flatten",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert _kinds(build_model(ModelConfig(hidden=(8,), batchnorm=True), 12, 2)) == [
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]


def test_build_model_unknown_init():
    with pytest.raises(ConfigError, match="model.init='zeros'"):
        build_model(ModelConfig(init="zeros"), 12, 2)


FAN_IN, FAN_OUT = 768, 256  # a 16x16x3 input to a 256-wide layer: 196,608 weights, tight statistics


def _first_layer(init: str, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(hidden=(FAN_OUT, 64), init=init), FAN_IN, 9)
    return model.net[1]


@pytest.mark.parametrize("init", ["xavier_uniform", "kaiming_normal", "uniform"])
def test_non_default_inits_zero_every_bias(init):
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(32, 16), init=init, batchnorm=True), 48, 3)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for m in linears:
        assert torch.count_nonzero(m.bias) == 0


def test_default_init_keeps_pytorch_biases_and_bounds():
    lin = _first_layer("default")
    bound = 1 / math.sqrt(FAN_IN)  # kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert torch.count_nonzero(lin.bias) == FAN_OUT
    assert lin.weight.abs().max() <= bound + 1e-7
    assert lin.weight.abs().max() > 0.95 * bound
    assert lin.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_xavier_uniform_statistics():
    lin = _first_layer("xavier_uniform")
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
    w = lin.weight
    assert w.abs().max() <= bound + 1e-7
    assert w.abs().max() > 0.99 * bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert abs(w.mean().item()) < 0.01 * bound


def test_kaiming_normal_statistics():
    lin = _first_layer("kaiming_normal")
    w = lin.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / FAN_IN), rel=0.02)
    assert abs(w.mean().item()) < 0.01 * math.sqrt(2 / FAN_IN)
    # normal, not uniform: some weights beyond 3 std
    assert (w.abs() > 3 * math.sqrt(2 / FAN_IN)).any()


def test_uniform_statistics():
    lin = _first_layer("uniform")
    w = lin.weight
    assert w.abs().max() <= 0.05
    assert w.abs().max() > 0.049
    assert w.std().item() == pytest.approx(0.05 / math.sqrt(3), rel=0.02)
    assert abs(w.mean().item()) < 0.001


def test_init_is_reproducible_from_torch_seed():
    a, b = _first_layer("kaiming_normal", seed=5), _first_layer("kaiming_normal", seed=5)
    c = _first_layer("kaiming_normal", seed=6)
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, c.weight)


# --------------------------------------------------------------------------- optimizer


@pytest.mark.parametrize(
    "name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)]
)
def test_build_optimizer(name, cls):
    model = nn.Linear(4, 2)
    opt = build_optimizer(OptimConfig(name=name, lr=0.02, weight_decay=1e-4, momentum=0.7), model.parameters())
    assert type(opt) is cls
    g = opt.param_groups[0]
    assert g["lr"] == 0.02 and g["weight_decay"] == 1e-4
    if name == "sgd":
        assert g["momentum"] == 0.7
    assert sum(p.numel() for p in g["params"]) == 10


def test_build_optimizer_unknown():
    with pytest.raises(ConfigError, match="optim.name='rmsprop'"):
        build_optimizer(OptimConfig(name="rmsprop"), nn.Linear(2, 2).parameters())


# --------------------------------------------------------------------------- train / evaluate


def _separable(n_per_class: int = 60, size: int = 4, seed: int = 0):
    """Class 0: dark images, class 1: bright images, with noise: linearly separable."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(2), n_per_class).astype(np.int64)
    base = np.where(y == 0, 60, 190)[:, None, None, None]
    x = np.clip(base + rng.normal(0, 25, (len(y), size, size, 3)), 0, 255).astype(np.uint8)
    return x, y


def _setup(model_cfg: ModelConfig, lr: float = 1e-2, size: int = 4, n_classes: int = 2):
    torch.manual_seed(0)
    model = build_model(model_cfg, size * size * 3, n_classes)
    return model, build_optimizer(OptimConfig(lr=lr), model.parameters())


def test_train_epoch_lowers_loss_and_raises_accuracy():
    x, y = _separable()
    model, opt = _setup(ModelConfig(hidden=(16,)))
    rng = np.random.default_rng(0)
    aug = Augment(NO_AUG, 4, 0)
    history = []
    for _ in range(5):
        s = train_epoch(model, opt, x, y, 16, aug, NO_AUG, rng, CPU)
        assert s.dtype == torch.float64 and s.shape == (3,)
        assert s[2].item() == len(y)
        history.append((s[0].item() / s[2].item(), s[1].item() / s[2].item()))
    assert history[-1][0] < history[0][0]
    assert history[-1][1] >= history[0][1]
    assert history[-1][1] > 0.95
    sums, preds = evaluate(model, x, y, NO_AUG, CPU)
    assert sums[1].item() / sums[2].item() > 0.95


def test_train_epoch_with_course_augment_and_batchnorm():
    x, y = _separable(size=8)
    model, opt = _setup(ModelConfig(hidden=(16,), batchnorm=True, dropout=0.1), size=8)
    aug = Augment(AugmentConfig(), 8, seed=0)
    first = train_epoch(model, opt, x, y, 32, aug, AugmentConfig(), np.random.default_rng(0), CPU)
    for _ in range(3):
        last = train_epoch(model, opt, x, y, 32, aug, AugmentConfig(), np.random.default_rng(1), CPU)
    assert last[0].item() < first[0].item()
    assert model.training  # train_epoch leaves the model in train mode


def test_train_epoch_is_deterministic():
    x, y = _separable()
    outs = []
    for _ in range(2):
        model, opt = _setup(ModelConfig(hidden=(8,)))
        s = train_epoch(model, opt, x, y, 16, Augment(NO_AUG, 4, 0), NO_AUG, np.random.default_rng(3), CPU)
        outs.append((s, [p.detach().clone() for p in model.parameters()]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))


def test_last_batch_of_one_is_dropped_for_batchnorm():
    x, y = _separable(n_per_class=17)  # 34 images, batch 11 -> 11, 11, 11, 1
    model, opt = _setup(ModelConfig(hidden=(8,), batchnorm=True))
    s = train_epoch(model, opt, x, y, 11, Augment(NO_AUG, 4, 0), NO_AUG, np.random.default_rng(0), CPU)
    assert s[2].item() == 33
    assert torch.isfinite(s).all()


def test_batch_size_larger_than_dataset():
    x, y = _separable(n_per_class=3)
    model, opt = _setup(ModelConfig(hidden=(8,), batchnorm=True))
    s = train_epoch(model, opt, x, y, 64, Augment(NO_AUG, 4, 0), NO_AUG, np.random.default_rng(0), CPU)
    assert s[2].item() == 6


def test_no_drop_when_batches_are_even():
    x, y = _separable(n_per_class=16)  # 32 images, batch 10 -> 10, 10, 10, 2
    model, opt = _setup(ModelConfig(hidden=(8,)))
    s = train_epoch(model, opt, x, y, 10, Augment(NO_AUG, 4, 0), NO_AUG, np.random.default_rng(0), CPU)
    assert s[2].item() == 32


def test_batchnorm_with_batch_size_one_is_rejected_up_front():
    study = Study(name="s", base=TrialConfig(model=ModelConfig(batchnorm=True), train=TrainConfig(batch_size=1)))
    with pytest.raises(ConfigError, match="batch_size"):
        check_study(study)


def test_evaluate_sums_match_predictions():
    x, y = _separable(n_per_class=150)  # 300 images: more than one EVAL_BATCH of 256
    model, _ = _setup(ModelConfig(hidden=(8,), dropout=0.5, batchnorm=True))
    sums, preds = evaluate(model, x, y, NO_AUG, CPU)
    assert not model.training
    assert preds.shape == (300,)
    assert sums[2].item() == 300
    assert sums[1].item() == (preds == y).sum()
    with torch.no_grad():
        logits = model(normalize(torch.from_numpy(x), NO_AUG))
    assert np.array_equal(preds, logits.argmax(1).numpy())
    assert sums[0].item() == pytest.approx(
        F.cross_entropy(logits, torch.from_numpy(y), reduction="sum").item(), rel=1e-5
    )
    again, preds2 = evaluate(model, x, y, NO_AUG, CPU)  # eval mode: dropout off, deterministic
    assert torch.equal(sums, again) and np.array_equal(preds, preds2)


def test_evaluate_empty_set():
    model, _ = _setup(ModelConfig(hidden=(4,)))
    sums, preds = evaluate(model, np.zeros((0, 4, 4, 3), np.uint8), np.zeros(0, np.int64), NO_AUG, CPU)
    assert sums.tolist() == [0.0, 0.0, 0.0] and preds.shape == (0,)


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_patience_zero_never_stops():
    es = EarlyStopping(0)
    for epoch, acc in enumerate([0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1], start=1):
        es.update(acc, epoch)
        assert not es.should_stop
    assert es.best == 0.5 and es.best_epoch == 1 and es.epochs_since_best == 6


def test_early_stopping_patience_two():
    es = EarlyStopping(2)
    assert es.update(0.5, 1) is True and not es.should_stop
    assert es.update(0.6, 2) is True and not es.should_stop
    assert es.update(0.6, 3) is False and not es.should_stop  # equal is not an improvement
    assert es.update(0.55, 4) is False and es.should_stop
    assert es.best == 0.6 and es.best_epoch == 2


def test_early_stopping_improvement_resets_counter():
    es = EarlyStopping(2)
    es.update(0.5, 1)
    es.update(0.4, 2)
    assert es.update(0.7, 3) is True
    assert es.epochs_since_best == 0 and not es.should_stop
    es.update(0.7, 4)
    assert not es.should_stop
    es.update(0.1, 5)
    assert es.should_stop and es.best_epoch == 3 and es.best == 0.7


def test_early_stopping_first_epoch_is_a_best_even_at_zero_accuracy():
    es = EarlyStopping(1)
    assert es.update(0.0, 1) is True
    assert es.best == 0.0 and es.best_epoch == 1


# --------------------------------------------------------------------------- metrics


def test_confusion_counts():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    cm = confusion(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.sum() == 6 and np.trace(cm) == 4


def test_confusion_includes_unseen_classes():
    assert confusion(np.array([0]), np.array([0]), 4).shape == (4, 4)


@pytest.mark.parametrize("seed", range(5))
def test_confusion_equals_the_bincount_formula(seed):
    rng = np.random.default_rng(seed)
    n_classes = 5
    y_true = rng.choice([0, 1, 2, 4], size=200)  # class 3 is never the truth
    y_pred = rng.choice([0, 1, 2, 4], size=200)  # ... nor predicted
    cm = confusion(y_true, y_pred, n_classes)
    expected = np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(n_classes, n_classes)
    assert np.array_equal(cm, expected) and np.issubdtype(cm.dtype, np.integer)
    assert not cm[3].any() and not cm[:, 3].any()
    assert np.array_equal(cm.sum(axis=1), np.bincount(y_true, minlength=n_classes))  # rows are the true labels


def test_confusion_of_no_samples_is_all_zero():
    cm = confusion(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 3)
    assert cm.shape == (3, 3) and not cm.any() and np.issubdtype(cm.dtype, np.integer)


@pytest.mark.filterwarnings("ignore:A single label was found")
@pytest.mark.parametrize("seed", range(40))
def test_confusion_and_report_are_scikit_learns_to_the_character(seed):
    """runner.trial.metrics computes them with numpy (sklearn.metrics took 1.1 s to import in each trial process):
    the same text as scikit-learn's, including classes never true or never predicted, and one class only."""
    from sklearn.metrics import classification_report as sk_report
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    classes = [f"class_{'x' * int(rng.integers(0, 14))}{i}" for i in range(n)]
    seen = rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)  # some classes never appear
    y_true = rng.choice(seen, size=int(rng.integers(1, 300)))
    y_pred = np.where(rng.random(len(y_true)) < rng.random(), y_true, rng.choice(n, size=len(y_true)))
    assert np.array_equal(confusion(y_true, y_pred, n), confusion_matrix(y_true, y_pred, labels=range(n)))
    expected = sk_report(y_true, y_pred, labels=list(range(n)), target_names=classes, digits=3, zero_division=0)
    assert classification_report(y_true, y_pred, classes) == expected


def test_classification_report_names_every_class():
    text = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["cat", "dog", "bird"])
    for name in ("cat", "dog", "bird", "precision", "recall"):
        assert name in text
