"""Progress bars: tqdm, with one switch for the whole toolkit.

`FEATUREBIAS_PROGRESS=0` in the environment turns every bar off (e.g. `%env` in a notebook),
whatever `progress=` a call passes.
"""

from __future__ import annotations

import importlib.util
import os

from tqdm import tqdm as _text_bar


def _bar_class():
    # tqdm.auto picks the notebook widget in Jupyter, but warns at import when ipywidgets is
    # missing; the text bar works everywhere.
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm as auto

        return auto
    return _text_bar


_BAR = _bar_class()


def tqdm(*args, disable: bool = False, **kwargs):
    """`tqdm.tqdm`, also disabled by `FEATUREBIAS_PROGRESS=0`."""
    off = os.environ.get("FEATUREBIAS_PROGRESS", "1").strip().lower() in {"0", "false", "no"}
    return _BAR(*args, disable=disable or off, **kwargs)
