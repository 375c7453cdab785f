"""Learning-rate search on the built-in lesions: 16 random samples of lr (log scale) x dropout x weight
decay, 2 seeds each, beside the course's baseline; ASHA stops the samples that fall behind the other samples.

Then the 3 best samples by score are confirmed: run every epoch over both seeds (a pruned trial carries on from its
checkpoint) and compared with the baseline ("base", the course's Adam 1e-3, no dropout), the reference, with
verdicts. The console ends with the answer: the best confirmed sample, its verdict, and its config to paste.
report.html shows every sample on parallel coordinates with the importance of each hyper-parameter.
"""

from runner.config import ASHA, ModelConfig, Search, Study, TrialConfig, loguniform, uniform

study = Study(
    name="lr_search",
    base=TrialConfig(model=ModelConfig(hidden=(512, 128))),
    variants={"base": {}},  # the course's pipeline, run beside the samples as the reference
    search=Search(
        space={
            "optim.lr": loguniform(1e-5, 1e-1),
            "model.dropout": uniform(0.0, 0.5),
            "optim.weight_decay": loguniform(1e-6, 1e-2),
        },
        samples=16,
        algorithm="random",
        seed=0,
        confirm=3,  # the 3 best samples by score run every epoch over every seed and get verdicts
    ),
    scheduler=ASHA(grace_epochs=2, reduction_factor=3),
    seeds=(0, 1),
)
