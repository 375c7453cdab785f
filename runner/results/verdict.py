"""What a comparison with the reference concludes: one enum, for the tables, the console and the advice."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    BETTER = "better"  # a larger value than the reference's, at ALPHA on the corrected p
    WORSE = "worse"
    NO_DIFFERENCE = "no detectable difference"
    TOO_FEW_SEEDS = "too few seeds"  # below 2 shared seeds: no test
    REFERENCE = "reference"  # the variant everything is compared with
    UNDECIDED = "undecided"  # sequential seeds: more seeds to go

    @property
    def short(self) -> str:
        """The verdict in a fixed-width console column."""
        return "no diff" if self is Verdict.NO_DIFFERENCE else str(self)
