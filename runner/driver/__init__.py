"""The driver process: the `python -m runner.tune` CLI, Ray, Tune and the study's phases. Never imports torch."""
