"""Seaborn figures from the toolkit's tidy tables.

Every plot takes the DataFrame a producer returns (`variance_explained`, `pc_attribution`,
`probe_sites`, `similarity_matrix`, `TrainResult.curves`, MDL and linearisation sweeps),
checks the columns it needs, draws into `ax` (or a new figure), saves a PNG when `path` is
given, and returns the matplotlib Figure. Feature (and eraser, probe, ...) colours come from
one palette keyed by name, so a feature looks the same in every figure; `set_palette` pins
them. Styles apply to the figure being drawn only; nothing here changes global settings.
Importing this package loads matplotlib and seaborn, which `import featurebias` does not.
"""

from ._palette import palette, reset_palette, set_palette
from ._style import save
from .images import erased_images
from .learning import did_plot, learning_curves, mdl_bars
from .linearisation import accuracy_vs_k, kernel_distance_plot
from .probes import probe_accuracy
from .representation import pc_attribution_plot, representation_bias
from .similarity import similarity_heatmap

__all__ = [
    "accuracy_vs_k", "did_plot", "erased_images", "kernel_distance_plot", "learning_curves",
    "mdl_bars", "palette", "pc_attribution_plot", "probe_accuracy", "representation_bias",
    "reset_palette", "save", "set_palette", "similarity_heatmap",
]
