"""Weight initialization study (the course's): default, Xavier uniform, He (Kaiming) normal, uniform.

Every variant uses dropout 0.1, as the course did, on the course's 512 -> 128 MLP; three seeds each
so differences can be told from noise.
"""

from runner.config import ModelConfig, Study, TrialConfig

study = Study(
    name="init_study",
    base=TrialConfig(model=ModelConfig(hidden=(512, 128), dropout=0.1)),
    variants={
        "default": {"model.init": "default"},  # PyTorch's Kaiming-uniform(a=sqrt(5)), the reference
        "xavier_uniform": {"model.init": "xavier_uniform"},
        "kaiming_normal": {"model.init": "kaiming_normal"},  # He normal, fan-in, for ReLU
        "uniform": {"model.init": "uniform"},  # U(-0.05, 0.05)
    },
    seeds=(0, 1, 2),
)
