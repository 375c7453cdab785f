"""The evaluate and predict commands: a study's best model applied to new images."""
