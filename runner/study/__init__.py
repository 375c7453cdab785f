"""The study's definition and plan: config dataclasses, search spaces, the trial plan. Standard library only."""
