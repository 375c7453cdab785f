"""The course's base pipeline on grayscale images (its question 6.4): the same MLP and training, with the
images decoded to one channel, so the input layer is 64 x 64 x 1 = 4,096 wide instead of 12,288.

The reference is the RGB baseline, so the summary says what colour is worth on this data; both are
ranked by test accuracy (lesions have a test split of their own that nothing is picked on).
"""

from runner.config import Study, TrialConfig

study = Study(
    name="grayscale",
    base=TrialConfig(),
    variants={
        "rgb": {},  # the course's baseline, the reference
        "grayscale": {"data.channels": 1},  # Normalize: ImageNet's mean/std averaged over R, G, B (0.449 / 0.226)
    },
    seeds=(0, 1, 2),
    metric="test_accuracy",
)
