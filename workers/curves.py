"""The validation curves an early-stopping rule decides on, read a little at a time.

A training worker asks the rule after each epoch; reading every epoch of the whole
search each time grew with the search. ``SearchCurves`` keeps what it read and asks
Postgres only for the epochs after the last sequence number it saw.
"""
from __future__ import annotations

from searches import selectors


class SearchCurves:
    """The validation-accuracy curve of every candidate of one search, by candidate id."""

    def __init__(self, search_id: int):
        self.search_id = search_id
        self.last_seq = 0
        self._curves: dict[int, list[float]] = {}

    def update(self) -> int:
        """Read the epochs committed since the last update; returns how many."""
        rows = selectors.validation_after(self.search_id, self.last_seq)
        for seq, candidate_id, epoch, value in rows:
            curve = self._curves.setdefault(candidate_id, [])
            # A candidate taken back from a silent worker trains again from epoch 1: its new
            # epochs replace the old (until its first new one, the old curve still counts).
            del curve[epoch - 1:]
            curve.append(value)
            self.last_seq = seq
        return len(rows)

    def of(self, candidate_id: int, *, up_to_epoch: int) -> tuple[list[float], list[list[float]]]:
        """The candidate's curve and its peers' curves, each cut at ``up_to_epoch``."""
        own = self._curves.get(candidate_id, [])[:up_to_epoch]
        peers = [curve[:up_to_epoch] for cid, curve in sorted(self._curves.items())
                 if cid != candidate_id and curve]
        return own, peers
