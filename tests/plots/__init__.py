"""Tests of featurebias.plots."""
