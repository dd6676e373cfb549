"""Errors of the NAS core that its callers tell apart from their own bugs."""


class StrategyError(Exception):
    """A strategy could not propose a valid candidate: bad settings, an architecture outside
    its space, a duplicate. A fault of the strategy, shown to the person; retrying gives the
    same answer (strategies are functions of seed and history)."""
