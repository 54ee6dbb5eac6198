"""Full-batch L-BFGS for L2-regularised logistic regression (scikit-learn's objective)."""

from __future__ import annotations

import dataclasses
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from ..erasure.linalg import symmetric_product
from . import _lbfgs as lbfgs

# exp() of a log-probability below this is a denormal float in float32, on which x86 runs the
# gradient product ~100x slower; clamping there moves a gradient entry by < 1e-34.
MIN_LOG_PROBA = -80.0

# Rows per chunk of the streamed passes: a few MiB, so a chunk read for the logits is still
# in cache for the gradient product that follows (on one CPU thread an evaluation at
# n = 16k, d = 512, 10 classes takes ~1.2x less time than two whole-matrix products).
CHUNK_BYTES = 4 << 20


@dataclasses.dataclass
class Solution:
    weight: Tensor  # [problems, k, d], or [problems, 1, d] for two classes (sklearn's layout)
    bias: Tensor  # [problems, k] or [problems, 1]
    n_iter: Tensor  # [problems]
    converged: Tensor  # [problems] bool


def logits_to_log_proba(z: Tensor) -> Tensor:
    """Log class probabilities from logits `[n, k]`, or `[n, 1]` for two classes."""
    if z.shape[1] == 1:
        return torch.cat([F.logsigmoid(-z), F.logsigmoid(z)], 1)
    return torch.log_softmax(z, 1)


# Rows that some problems leave out (the held-out fold of a cross-validation split) are
# skipped for those problems when their rows are stored together, in at most this many runs.
MAX_RUNS = 64


class CrossEntropy:
    """`Σ_i s_pi CE_i(W_p x_i + b_p)` for problems `p` sharing rows `x [n, d]` and class ids,
    each with its row weights `s_p` (a row of `row_weight [problems, n]`).

    Cross-entropy is a log-partition term `A(z_i)` (logsumexp; softplus for the one logit of
    two classes) minus the true class's logit, and the second term is linear in `(W, b)`:
    its coefficients `Σ_i s_pi e_{y_i} x_iᵀ` are summed once here. An evaluation then streams
    the rows in chunks, each used twice while in cache: every problem's logits from one
    product, then `∇A`ᵀ·chunk into the gradients. Where consecutive rows have zero weight for
    some problems (rows ordered by the splits that use them), those problems skip them.
    """

    def __init__(self, x: Tensor, ids: Tensor, outputs: int, row_weight: Tensor):
        self.x = x
        self.binary = outputs == 1
        self.row_weight = row_weight
        # One problem whose weights are all 1/n needs no per-row scaling.
        self.uniform = len(row_weight) == 1 and bool((row_weight == row_weight[0, 0]).all())
        targets = (ids == torch.arange(outputs, device=x.device)[:, None] + self.binary)
        weighted = targets.to(x.dtype) * row_weight[:, None]  # [problems, outputs, n]
        problems, n = row_weight.shape
        self.target_w = (weighted.view(-1, n) @ x).view(problems, outputs, -1)
        self.target_b = weighted.sum(2)
        d = x.shape[1]
        self.chunk = n if x.device.type != "cpu" else max(64, CHUNK_BYTES // (d * x.itemsize))
        self.runs = _runs(row_weight)

    def __call__(self, w: Tensor, b: Tensor, problems: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
        """Losses `[a]` (float64) and gradients `[a, outputs, d]`, `[a, outputs]` at weights
        `w [a, outputs, d]` and biases `b [a, outputs]` of `problems` (indices; default all)."""
        every = slice(None) if problems is None else problems
        row_weight, target_w, target_b = (self.row_weight[every], self.target_w[every],
                                          self.target_b[every])
        n = self.x.shape[0]
        a, outputs, d = w.shape
        grad_w = torch.zeros(a, outputs, d, dtype=w.dtype, device=w.device)
        grad_b = torch.zeros_like(b)
        partition = torch.zeros(a, dtype=torch.float64, device=w.device)
        chosen = slice(None) if problems is None else problems.cpu()
        for start, stop, members in self.runs:
            inside = None if members is None else members[chosen].nonzero()[:, 0]
            if inside is None or len(inside) == a:
                self._stream(start, stop, w, b, row_weight, grad_w, grad_b, partition)
            elif len(inside):  # only the problems that use these rows, then scattered back
                inside = inside.to(w.device)
                sums = grad_w[inside], grad_b[inside], partition[inside]
                self._stream(start, stop, w[inside], b[inside], row_weight[inside], *sums)
                for total, part in zip((grad_w, grad_b, partition), sums, strict=True):
                    total[inside] = part
        if self.uniform:  # every weight is 1/n: scale once, not per chunk
            partition /= n
            grad_w /= n
            grad_b /= n
        linear = ((w * target_w).sum((1, 2), dtype=torch.float64)
                  + (b * target_b).sum(1, dtype=torch.float64))
        return partition - linear, grad_w.sub_(target_w), grad_b.sub_(target_b)

    def _stream(self, start: int, stop: int, w: Tensor, b: Tensor, row_weight: Tensor,
                grad_w: Tensor, grad_b: Tensor, partition: Tensor) -> None:
        """Add rows `start:stop`'s log-partition sums and gradients to the last three."""
        a, outputs, d = w.shape
        flat_w, flat_grad = w.reshape(a * outputs, d), grad_w.view(a * outputs, d)
        for first in range(start, stop, self.chunk):
            last = min(first + self.chunk, stop)
            rows = self.x[first:last]
            # [problems, outputs, rows]: logits in the layout BLAS computes fastest.
            z = (flat_w @ rows.T).view(a, outputs, -1).add_(b[:, :, None])
            if self.binary:
                part = F.softplus(z[:, 0])
                da = torch.sigmoid(z.clamp_min_(MIN_LOG_PROBA))
            else:
                part = torch.logsumexp(z, 1)
                da = z.sub_(part[:, None]).clamp_min_(MIN_LOG_PROBA).exp_()
            if not self.uniform:
                s = row_weight[:, first:last]
                part, da = part * s, da.mul_(s[:, None])
            partition += part.sum(1, dtype=torch.float64)
            flat_grad.addmm_(da.view(a * outputs, -1), rows)
            grad_b += da.sum(2)


def _runs(row_weight: Tensor) -> list[tuple[int, int, Tensor | None]]:
    """`(start, stop, members)`: runs of consecutive rows that the same problems use (weight
    ≠ 0), `members [problems]` a CPU bool mask; one run of every row (members None) when the
    runs are too many or would skip less than a tenth of the work."""
    used = row_weight != 0
    problems, n = used.shape
    whole = [(0, n, None)]
    if bool(used.all()):
        return whole
    starts = ((used[:, 1:] != used[:, :-1]).any(0).nonzero()[:, 0] + 1).tolist()
    if len(starts) >= MAX_RUNS:
        return whole
    bounds = [0, *starts, n]
    runs = [(first, last, used[:, first].cpu()) for first, last in itertools.pairwise(bounds)]
    skipped = sum((last - first) * int((~members).sum()) for first, last, members in runs)
    return runs if skipped >= 0.1 * problems * n else whole


def preconditioner(x: Tensor, l2: float) -> Tensor | None:
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
    # The product's rounding (d·eps of each diagonal entry) can leave collinear features'
    # Gram indefinite where l2 is smaller (a large C): each column's ridge is kept above it
    # (relative to its own scale, unstandardised columns span decades), and a factor that
    # still fails means no preconditioning (None).
    diagonal = gram.diagonal()
    diagonal.add_((d * torch.finfo(x.dtype).eps * diagonal).clamp_min(l2))
    chol, info = torch.linalg.cholesky_ex(gram)
    if int(info):
        return None
    eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve_triangular(chol, eye, upper=False).T.to(x.dtype)


def worth_preconditioning(n: int, d: int, outputs: int) -> bool:
    """Whether the preconditioner likely pays for itself on `n` rows, `d` features.

    It costs a symmetric product over up to `8·d` rows and two `d³` factorisations; it
    typically saves 10–60 L-BFGS evaluations on correlated activations. An evaluation is
    two products with the data, whose cost grows with the outputs only from about four on
    (below that, reading the data dominates). The rule: `rows·d + 2d² ≤ 300·n·max(outputs,
    4)`. Checked on 11 shapes (1 CPU thread, n = 2k–20k, d = 256–2048, 2 or 10 classes):
    where it whitens, fits took 1.07–2.2x less time; where it does not, whitening would have
    taken 1.06–3.3x longer (n = 8k, d = 1024 or 2048, two classes; n = 16k, d = 2048, two
    classes); it missed n = 2k, d = 768, two classes (1.7x).
    """
    rows = min(n, 8 * d)
    return rows * d + 2 * d * d <= 300 * n * max(outputs, 4)


def fit_logistic(x: Tensor, ids: Tensor, k: int, C: Tensor, row_weight: Tensor, *,
                 max_iter: int, tol: float, precondition: bool | str = "auto",
                 shift: Tensor | None = None, ratio: Tensor | None = None) -> Solution:
    """Solve logistic regressions on the shared rows `x [n, d]` and class ids, one per row of
    `row_weight [problems, n]` (≥ 0; zero leaves a row out) and entry of `C [problems]`.

    Problem `p` minimises `Σ_i w_pi CE_i / Σ_i w_pi + ‖W‖² / (2 C_p Σ_i w_pi)` (intercept
    unpenalised) on the features `u_pi = (x_i − shift_p) ⊙ ratio_p` (its own standardisation
    expressed against `x`'s; `x` itself when both are None). That is scikit-learn's
    `0.5‖W‖² + C Σ_i w_i CE_i` divided by `C Σ w_i`, so the same `C` gives the same
    minimiser; like sklearn's `gtol`, `tol` bounds the largest entry of each problem's
    gradient. L-BFGS from zero, as sklearn's: on nearly separable data a loose `tol` stops
    early, and this keeps the early stop where sklearn's would be. Two classes use one logit
    (sklearn's binary model: two symmetric logits would be penalised differently).
    """
    n, d = x.shape
    problems = row_weight.shape[0]
    outputs = 1 if k == 2 else k
    total = row_weight.sum(1, dtype=torch.float64)
    l2 = (1.0 / (C.to(total) * total)).to(x.dtype)
    objective = CrossEntropy(x, ids, outputs, (row_weight / total[:, None]).to(x.dtype))
    # The optimiser's variables are V with W = V Pᵀ (P = I without preconditioning), and b;
    # W = 0 at the start either way, and the stopping test is on W's gradient, as sklearn's.
    if precondition == "auto":
        precondition = worth_preconditioning(n, d, outputs * problems)
    p = preconditioner(x, float(l2.min())) if precondition else None
    size = outputs * d

    def weights(point: Tensor) -> tuple[Tensor, Tensor]:
        v, b = point[:, :size].view(-1, outputs, d), point[:, size:]
        return (v if p is None else v @ p.T), b

    def evaluate(point: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w, b = weights(point)
        if shift is None:
            loss, grad_w, grad_b = objective(w, b, rows)
        else:  # logits W u + b = (W ⊙ ratio) x + b − (W ⊙ ratio)·shift
            r, m = ratio[rows, None], shift[rows, None]
            w_x = w * r
            loss, grad_w, grad_b = objective(w_x, b - (w_x * m).sum(2), rows)
            grad_w = (grad_w - grad_b[:, :, None] * m).mul_(r)
        penalty = l2[rows, None, None]
        grad_w.add_(penalty * w)
        loss += 0.5 * (penalty * w.square()).sum((1, 2), dtype=torch.float64)
        stop = torch.maximum(grad_w.abs().amax((1, 2)), grad_b.abs().amax(1)) <= tol
        grad_v = grad_w if p is None else grad_w @ p
        return loss, torch.cat([grad_v.flatten(1), grad_b], 1), stop

    # The softmax's curvature at zero logits is 1/k in whitened coordinates (1/4 for the
    # one logit of two classes): its inverse makes the first step about right.
    first_step = 4.0 if outputs == 1 else float(k)
    start = torch.zeros(problems, size + outputs, dtype=x.dtype, device=x.device)
    result = lbfgs.minimize(evaluate, start, max_iter=max_iter, first_step=first_step)
    w, b = weights(result.x)
    return Solution(w.clone(), b.clone(), result.n_iter, result.converged)
