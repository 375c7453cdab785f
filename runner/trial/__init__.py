"""The trial process: the Tune function, the Ray session, the epoch loop and its torch code. Never imports runner.driver."""
