"""When ranks disagree or one of them fails, every rank raises (none waits forever)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("check", ["moments", "fitter"])
def test_statistics_of_different_layouts_are_refused_on_every_rank(ranks, check):
    messages = [r["errors"][check] for r in ranks]
    assert all(m.startswith("ConfigError: ranks disagree on the statistics' layout")
               for m in messages)
    assert len(set(messages)) == 1  # every rank names every rank's layout
    assert all(r["errors"]["fitter_unchanged"] for r in ranks)  # a rejected merge changes nothing


def test_minibatch_cka_fed_different_names_is_refused_on_every_rank(ranks):
    assert all(r["errors"]["cka"].startswith("ConfigError: ranks fed MinibatchCKA different")
               for r in ranks)


def test_one_failing_rank_makes_every_rank_raise(ranks):
    assert ranks[1]["errors"]["together"] == "ValueError: rank 1 broke"
    for r in (ranks[0], ranks[2]):
        assert r["errors"]["together"].startswith("ConfigError: the test step failed on rank 1")
        assert "rank 1 broke" in r["errors"]["together"]


def test_an_unknown_reduction_is_a_config_error(ranks):
    assert all("op must be one of" in r["errors"]["op"] for r in ranks)
