"""Smoke test: two tiny variants x two seeds on the built-in digits, 2 epochs. Runs in seconds per trial."""

from runner.config import DataConfig, ModelConfig, Study, TrainConfig, TrialConfig

study = Study(
    name="smoke",
    base=TrialConfig(
        data=DataConfig(path="builtin:digits", image_size=16),  # 16x16x3 = 768 inputs: tiny and fast
        model=ModelConfig(hidden=(32,)),
        train=TrainConfig(epochs=2, batch_size=64),
    ),
    variants={
        "base": {},
        "dropout_0.2": {"model.dropout": 0.2},
    },
    seeds=(0, 1),
)
