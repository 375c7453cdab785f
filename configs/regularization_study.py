"""Regularization study (the course's): dropout, BatchNorm, weight decay, on a 512 -> 256 MLP.

Early stopping with patience 10 epochs on val accuracy, so each variant gets up to 50 epochs and
stops once it no longer improves; the best epoch is what the summary compares.
"""

from runner.config import ModelConfig, Study, TrainConfig, TrialConfig

study = Study(
    name="regularization_study",
    base=TrialConfig(
        model=ModelConfig(hidden=(512, 256)),
        train=TrainConfig(epochs=50, patience=10),  # patience in epochs without a new best val accuracy
    ),
    variants={
        "none": {},  # the reference: no regularization
        "dropout_0.5": {"model.dropout": 0.5},
        "dropout_0.2": {"model.dropout": 0.2},
        "dropout_0.1": {"model.dropout": 0.1},
        "batchnorm": {"model.batchnorm": True},
        "batchnorm_dropout_0.1": {"model.batchnorm": True, "model.dropout": 0.1},
        "wd_1e-4": {"optim.weight_decay": 1e-4},
        "wd_1e-4_dropout_0.1": {"optim.weight_decay": 1e-4, "model.dropout": 0.1},
        "wd_1e-3_dropout_0.1": {"optim.weight_decay": 1e-3, "model.dropout": 0.1},
    },
    seeds=(0, 1, 2),
)
