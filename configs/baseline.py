"""The course's base pipeline, unchanged: every default of TrialConfig reproduces it.

Resize 64x64, HorizontalFlip(p=0.5), RandomBrightnessContrast(p=0.2), Normalize (ImageNet mean/std);
MLP Flatten -> 12288 -> 512 -> ReLU -> 128 -> ReLU -> classes; Adam lr 1e-3; CrossEntropyLoss;
batch 32; 10 epochs; no early stopping.
"""

from runner.config import Study, TrialConfig

study = Study(name="baseline", base=TrialConfig(), variants={"baseline": {}}, seeds=(0, 1, 2))
