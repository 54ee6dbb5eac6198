"""Full-batch L-BFGS for L2-regularised logistic regression (scikit-learn's objective)."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from ..erasure.linalg import symmetric_product
from . import _lbfgs as lbfgs

# exp() of a log-probability below this is a denormal float in float32, on which x86 runs the
# gradient product ~100x slower; clamping there moves a gradient entry by < 1e-34.
MIN_LOG_PROBA = -80.0

# Rows per chunk of the streamed passes: a few MiB, so a chunk read for the logits is still
# in cache for the gradient product that follows (on one CPU thread an evaluation takes
# ~1.4x less time than two whole-matrix products).
CHUNK_BYTES = 4 << 20


@dataclasses.dataclass
class Solution:
    weight: Tensor  # [k, d], or [1, d] for two classes (scikit-learn's binary layout)
    bias: Tensor  # [k] or [1]
    n_iter: int
    converged: bool


def logits_to_log_proba(z: Tensor) -> Tensor:
    """Log class probabilities from logits `[n, k]`, or `[n, 1]` for two classes."""
    if z.shape[1] == 1:
        return torch.cat([F.logsigmoid(-z), F.logsigmoid(z)], 1)
    return torch.log_softmax(z, 1)


class CrossEntropy:
    """`Σ_i s_i CE_i(W x_i + b)` over fixed rows `x [n, d]`, class ids and row weights `s`.

    Cross-entropy is a log-partition term `A(z_i)` (logsumexp; softplus for the one logit of
    two classes) minus the true class's logit, and the second term is linear in `(W, b)`:
    its coefficients `Σ_i s_i e_{y_i} x_iᵀ` are summed once here. An evaluation then streams
    the rows in chunks, each used twice while in cache: logits, then `∇A`ᵀ·chunk into the
    gradient.
    """

    def __init__(self, x: Tensor, ids: Tensor, outputs: int, row_weight: Tensor):
        self.x = x
        self.binary = outputs == 1
        self.row_weight = row_weight  # [n], summing to 1
        self.uniform = bool((row_weight == row_weight[0]).all())
        targets = (ids[None] == torch.arange(outputs, device=x.device)[:, None] + self.binary)
        weighted = targets.to(x.dtype) * row_weight  # [outputs, n]; ids 1 for the binary logit
        self.target_w = weighted @ x  # [outputs, d]
        self.target_b = weighted.sum(1)
        n, d = x.shape
        self.chunk = n if x.device.type != "cpu" else max(64, CHUNK_BYTES // (d * x.itemsize))

    def __call__(self, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`(loss (float64), ∂/∂w [outputs, d], ∂/∂b [outputs])` at `(w, b)`."""
        n = self.x.shape[0]
        grad_w = torch.zeros_like(self.target_w)
        grad_b = torch.zeros_like(self.target_b)
        partition = torch.zeros((), dtype=torch.float64, device=w.device)
        for start in range(0, n, self.chunk):
            rows = self.x[start:start + self.chunk]
            z = (w @ rows.T).add_(b[:, None])  # [outputs, rows]: the fast layout for BLAS
            if self.binary:
                a = F.softplus(z[0])
                da = torch.sigmoid(z.clamp_min_(MIN_LOG_PROBA))
            else:
                a = torch.logsumexp(z, 0)
                da = z.sub_(a).clamp_min_(MIN_LOG_PROBA).exp_()
            if not self.uniform:
                s = self.row_weight[start:start + self.chunk]
                a, da = a * s, da.mul_(s)
            partition += a.sum(dtype=torch.float64)
            grad_w.addmm_(da, rows)
            grad_b += da.sum(1)
        if self.uniform:  # every weight is 1/n: scale once, not per chunk
            partition /= n
            grad_w /= n
            grad_b /= n
        linear = (w * self.target_w).sum(dtype=torch.float64) + (b * self.target_b).sum(
            dtype=torch.float64)
        return partition - linear, grad_w.sub_(self.target_w), grad_b.sub_(self.target_b)


def preconditioner(x: Tensor, l2: float) -> Tensor:
    """`P` with `P Pᵀ ≈ (xᵀx / n + l2·I)⁻¹`: the inverse of the objective's curvature with the
    softmax factor replaced by one.

    L-BFGS on `W = V Pᵀ` sees a Hessian near the identity instead of one as ill-conditioned
    as the features' covariance; on correlated activations that cuts the passes over the data
    3-12x, for one `d×d` product and a Cholesky factor. The product uses every row only up to
    `8·d` of them (evenly strided): a preconditioner need only be close, and it never changes
    the minimiser; class weights are ignored for the same reason.
    """
    n, d = x.shape
    rows = x[:: -(-n // (8 * d))]
    gram = symmetric_product(rows).double() / rows.shape[0]
    gram.diagonal().add_(l2)
    chol = torch.linalg.cholesky(gram)
    eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve_triangular(chol, eye, upper=False).T.to(x.dtype)


def worth_preconditioning(n: int, d: int, outputs: int) -> bool:
    """Whether the preconditioner likely pays for itself on `n` rows, `d` features.

    It costs one product over up to `8·d` rows and two `d³` factorisations; an L-BFGS
    evaluation costs two skinny products with the data, which run at about a third of a square
    product's speed. It typically saves 10–60 evaluations on correlated activations, so it is
    used when it costs at most ~15 of them. Measured (1 CPU thread, n = 16k unless said): at
    d = 256–1024 and 10 classes it cuts fit time 1.1–1.7x; at d = 2048, or d = 1024 with two
    classes, fits took 1.4–2.6x longer with it (13x at n = 8k, d = 2048, two classes).
    """
    rows = min(n, 8 * d)
    return rows * d + 2 * d * d <= 15 * 6 * n * outputs


def fit_logistic(x: Tensor, ids: Tensor, k: int, C: float, *, class_weight: Tensor | None,
                 max_iter: int, tol: float, precondition: bool | str = "auto") -> Solution:
    """Minimise `Σ_i w_i CE_i / Σ_i w_i + ‖W‖² / (2 C Σ_i w_i)` (intercept unpenalised).

    That is scikit-learn's `0.5‖W‖² + C Σ_i w_i CE_i` divided by `C Σ w_i`, so the same `C`
    gives the same minimiser; like sklearn's `gtol`, `tol` bounds the largest entry of the
    gradient. L-BFGS from zero, as sklearn's: on nearly separable data a loose `tol` stops
    early, and this keeps the early stop where sklearn's would be. Two classes use one logit
    (sklearn's binary model: two symmetric logits would be penalised differently).
    """
    n, d = x.shape
    outputs = 1 if k == 2 else k
    sample_w = (torch.ones(n, dtype=x.dtype, device=x.device) if class_weight is None
                else class_weight.to(x)[ids])
    total = float(sample_w.sum())
    l2 = 1.0 / (C * total)
    objective = CrossEntropy(x, ids, outputs, sample_w / total)
    # The optimiser's variable is V with W = V Pᵀ (P = I without preconditioning), and b;
    # W = 0 at the start either way, and the stopping test is on W's gradient, as sklearn's.
    if precondition == "auto":
        precondition = worth_preconditioning(n, d, outputs)
    p = preconditioner(x, l2) if precondition else None
    size = outputs * d

    def weights(point: Tensor) -> tuple[Tensor, Tensor]:
        v, b = point[0, :size].view(outputs, d), point[0, size:]
        return (v if p is None else v @ p.T), b

    def evaluate(point: Tensor, _rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w, b = weights(point)
        loss, grad_w, grad_b = objective(w, b)
        grad_w.add_(w, alpha=l2)
        loss += 0.5 * l2 * w.square().sum(dtype=torch.float64)
        stop = max(float(grad_w.abs().max()), float(grad_b.abs().max())) <= tol
        grad_v = grad_w if p is None else grad_w @ p
        return (loss.reshape(1), torch.cat([grad_v.reshape(-1), grad_b])[None],
                torch.tensor([stop], device=x.device))

    # The softmax's curvature at zero logits is 1/k in whitened coordinates (1/4 for the
    # one logit of two classes): its inverse makes the first step about right.
    first_step = 4.0 if outputs == 1 else float(k)
    start = torch.zeros(1, size + outputs, dtype=x.dtype, device=x.device)
    result = lbfgs.minimize(evaluate, start, max_iter=max_iter, first_step=first_step)
    w, b = weights(result.x)
    return Solution(w.clone(), b.clone(), int(result.n_iter[0]), bool(result.converged[0]))
