"""Feature-strength metrics: how much of a representation each feature accounts for.

`variance_explained` (encoding R² per feature, jointly and uniquely), `pc_attribution` (each
feature's share of the top principal components) and the per-unit measures `unit_r2`,
`unit_selectivity` and `unit_density`. All take activations per site (optionally per training
step) and features `{name: values [n]}`, and return tidy DataFrames (SCIENCE.md §6.2).
"""

from .pca import pc_attribution
from .units import unit_density, unit_r2, unit_selectivity
from .variance import variance_explained

__all__ = ["pc_attribution", "unit_density", "unit_r2", "unit_selectivity",
           "variance_explained"]
