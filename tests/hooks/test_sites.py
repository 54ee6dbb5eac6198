"""Site names over plain modules and hook-point models."""

from __future__ import annotations

import pytest
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from featurebias.errors import SiteError
from featurebias.sites import list_sites, resolve


class Hooked(HookedRootModule):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.hook_fc = HookPoint()
        self.setup()

    def forward(self, x):
        return self.hook_fc(self.fc(x))


def test_plain_module_paths_and_inputs():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))
    assert list_sites(model) == ["0", "1", "1.0", "1.1"]
    site = resolve(model, "1.1:input")
    assert site.module is model[1][1] and site.port == "input"
    assert resolve(model, "0").port == "output"


def test_hook_points_listed_and_module_paths_still_resolve():
    model = Hooked()
    assert list_sites(model) == ["hook_fc"]
    assert "fc" in list_sites(model, modules=True)
    assert resolve(model, "hook_fc").module is model.hook_fc
    assert resolve(model, "fc").module is model.fc


@pytest.mark.parametrize("name", ["hook_fx", "", "fc.weight"])
def test_unknown_site_names_closest(name):
    with pytest.raises(SiteError) as info:
        resolve(Hooked(), name)
    if name == "hook_fx":
        assert "hook_fc" in str(info.value)
