"""`ConceptEraser`: the label-free erasers as a scikit-learn transformer (for Pipelines)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .. import _validate as check
from .alf import AlfQleaceEraser
from .controls import IdentityEraser, RandomEraser
from .leace import LeaceEraser

METHODS = {"leace": LeaceEraser, "orth": LeaceEraser, "alf-qleace": AlfQleaceEraser,
           "random": RandomEraser, "identity": IdentityEraser}


class ConceptEraser(TransformerMixin, BaseEstimator):
    """Fit a concept eraser on `(X, y)` and apply it to any `X` (no labels needed).

    Args:
        method: `"leace"`, `"orth"`, `"alf-qleace"`, `"random"` or `"identity"`.
        rank: subspace rank for `"random"`.
        seed: seed for `"random"`.
        options: further keyword arguments for the eraser's fitter (e.g. `svd_tol`).

    Fitted attribute: `eraser_`. Statistics are float64; `transform` returns X's dtype.
    """

    def __init__(self, method: str = "leace", *, rank: int = 1, seed: int = 0,
                 options: dict | None = None):
        self.method = method
        self.rank = rank
        self.seed = seed
        self.options = options

    def fit(self, X, y=None):
        check.choice(self.method, "method", tuple(METHODS))
        x = torch.as_tensor(np.asarray(X, dtype=np.float64))
        kwargs = dict(self.options or {})
        if self.method in ("leace", "orth"):
            kwargs["method"] = self.method
        if self.method == "random":
            kwargs.update(rank=self.rank, seed=self.seed)
        z = None
        if y is not None:
            y = np.asarray(y)
            if y.ndim == 1 and not np.issubdtype(y.dtype, np.floating):
                # Class labels of any kind ({-1, +1}, strings, bools) as ids 0..k-1, as
                # scikit-learn's classifiers take them; float y is a concept's values.
                y = np.unique(y, return_inverse=True)[1]
            z = torch.as_tensor(y)
        self.eraser_ = METHODS[self.method].fit(x, z, **kwargs)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "eraser_")
        array = np.asarray(X)
        dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
        out = self.eraser_(torch.as_tensor(array.astype(np.float64)))
        return out.numpy().astype(dtype)
