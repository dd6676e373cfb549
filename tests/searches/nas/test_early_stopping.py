import math

import pytest

from searches.nas.early_stopping import (ASHA, EARLY_STOPPING, MedianStopping, NoEarlyStopping,
                                         get_early_stopping)

PEERS = [[0.5, 0.6, 0.7, 0.8, 0.85], [0.4, 0.5, 0.6, 0.7, 0.75], [0.6, 0.7, 0.8, 0.85, 0.9]]


def test_registry_builds_every_rule_from_its_settings():
    assert set(EARLY_STOPPING) == {"none", "median", "asha"}
    for name, cls in EARLY_STOPPING.items():
        rule = cls()
        assert rule.name == name and rule.label
        assert get_early_stopping(name, rule.settings()) == rule


def test_no_early_stopping_never_stops():
    assert not NoEarlyStopping().decide([0.0] * 10, PEERS).stop


def test_median_stops_a_candidate_below_the_peers_median_running_average():
    rule = MedianStopping(grace_epochs=1, min_peers=3)
    # At epoch 3 the peers' running averages are 0.6, 0.5 and 0.7: the median is 0.6.
    decision = rule.decide([0.3, 0.5, 0.55], PEERS)
    assert decision.stop
    assert "0.55" in decision.reason and "0.6" in decision.reason
    assert not rule.decide([0.3, 0.5, 0.6], PEERS).stop


def test_median_waits_for_the_grace_period_and_enough_peers():
    assert not MedianStopping(grace_epochs=3, min_peers=3).decide([0.1, 0.1, 0.1], PEERS).stop
    assert MedianStopping(grace_epochs=2, min_peers=3).decide([0.1, 0.1, 0.1], PEERS).stop
    decision = MedianStopping(grace_epochs=0, min_peers=4).decide([0.1, 0.1], PEERS)
    assert not decision.stop and "3 peers" in decision.reason


def test_median_only_counts_peers_that_reached_the_epoch():
    short_peers = [[0.9, 0.9]] * 5 + PEERS
    rule = MedianStopping(grace_epochs=0, min_peers=3)
    assert not rule.decide([0.3, 0.5, 0.6], short_peers).stop


def test_median_treats_a_diverged_curve_as_worst():
    assert MedianStopping(grace_epochs=0).decide([math.nan, math.nan, math.nan], PEERS).stop


def test_asha_rungs_grow_by_eta():
    assert ASHA(min_epochs=1, eta=3).rungs(30) == [1, 3, 9, 27]
    assert ASHA(min_epochs=2, eta=2, max_epochs=16).rungs(20) == [2, 4, 8]


def test_asha_keeps_only_the_top_fraction_at_a_rung():
    rule = ASHA(min_epochs=1, eta=3)
    peers = [[0.5, 0.6, 0.7], [0.4, 0.5, 0.55], [0.6, 0.65, 0.9], [0.3, 0.4, 0.5], [0.2, 0.3, 0.45]]
    # Epoch 3 is a rung: 6 candidates, keep the top 2; the cutoff is 0.7.
    assert not rule.decide([0.1, 0.2, 0.8], peers).stop
    stopped = rule.decide([0.1, 0.2, 0.6], peers)
    assert stopped.stop and "top 2 of 6" in stopped.reason


def test_asha_decides_nothing_between_rungs_or_at_the_last_epoch():
    peers = [[0.9] * 9] * 6
    assert not ASHA(min_epochs=1, eta=3).decide([0.1, 0.1], peers).stop  # epoch 2 is no rung
    assert not ASHA(min_epochs=1, eta=3, max_epochs=3).decide([0.1] * 3, peers).stop


def test_asha_lets_the_first_candidates_through():
    assert not ASHA(min_epochs=1, eta=3).decide([0.1], []).stop
    assert not ASHA(min_epochs=1, eta=3).decide([0.5], [[0.4]]).stop
    assert ASHA(min_epochs=1, eta=3).decide([0.3], [[0.4]]).stop


@pytest.mark.parametrize("cls", [MedianStopping, ASHA])
def test_rules_refuse_nonsense_settings(cls):
    with pytest.raises(ValueError):
        cls(**{"grace_epochs": -1} if cls is MedianStopping else {"eta": 1})
