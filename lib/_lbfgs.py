"""L-BFGS over one flat parameter vector, its two-loop recursion done as matrix products.

``torch.optim.LBFGS`` runs the two-loop recursion (Nocedal and Wright 2006, alg. 7.4) as
about ``4 h`` vector operations per iteration for a history of ``h`` pairs, each paying
the interpreter and torch's dispatch: for a few thousand parameters and ``h = 50`` that
costs as much as evaluating the objective. With the pairs stacked into ``S, Y`` ``(h, n)``
and their Gram matrices kept up to date, the same recursion is two triangular solves of
size ``h`` and two passes over the stacked pairs (the matrix form of Byrd, Nocedal and
Schnabel 1994). Everything else follows ``torch.optim.LBFGS`` (``lr = 1``, strong Wolfe)
step for step: the first step ``min(1, 1/||g||_1)``, the curvature test ``y.s > 1e-10``,
the scaling ``H_0 = y.s / y.y``, torch's own line search, the stopping tests, and the state
kept between calls of :meth:`FlatLBFGS.run`; the iterates agree with torch's to rounding
(``tests/test_statistical.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim.lbfgs import _strong_wolfe

Objective = Callable[[Tensor], tuple[float, Tensor]]


class FlatLBFGS:
    """Minimise ``fun(x) -> (value, gradient)`` over a flat float tensor ``x`` (kept in ``self.x``)."""

    def __init__(self, fun: Objective, x: Tensor, *, history: int = 50, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9) -> None:
        self.fun, self.x, self.h = fun, x.detach().clone(), history
        self.tol_grad, self.tol_change = tolerance_grad, tolerance_change
        kw = dict(dtype=x.dtype, device=x.device)
        self.P = torch.zeros(2 * history, x.numel(), **kw)  # ring buffers: s_i in rows 0..h-1, y_i below
        self.SY = torch.zeros(history, history, **kw)  # s_i . y_j
        self.YY = torch.zeros(history, history, **kw)  # y_i . y_j
        self.rho = torch.zeros(history, **kw)
        self.count = self.head = self.k = 0  # stored pairs, slot of the oldest, iterations so far
        self.d = self.t = self.g_prev = self.h_diag = None

    def run(self, max_iter: int, max_eval: int | None = None) -> float:
        """Up to ``max_iter`` iterations and ``max_eval`` evaluations (default ``max_iter * 5 // 4``,
        torch's), as one ``torch.optim.LBFGS.step`` call; returns the last value."""
        max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        loss, g = self.fun(self.x)
        evals = 1
        if g.abs().max() <= self.tol_grad:
            return loss
        for n_iter in range(1, max_iter + 1):
            self.k += 1
            if self.k == 1:
                d, self.h_diag = -g, 1.0
            else:
                d = self._update_and_direction(g)
            self.g_prev, prev_loss = g.clone(), loss
            t = min(1.0, 1.0 / g.abs().sum()) if self.k == 1 else 1.0
            self.d, self.t = d, t
            gtd = g.dot(d)
            if gtd > -self.tol_change:
                break
            loss, g, t, ls_evals = _strong_wolfe(self._along, self.x, t, d, loss, g, gtd, max_ls=max_eval - evals)
            self.x = self.x + t * d
            self.t = t
            evals += ls_evals
            if (n_iter == max_iter or evals >= max_eval or g.abs().max() <= self.tol_grad
                    or (d * t).abs().max() <= self.tol_change or abs(loss - prev_loss) < self.tol_change):
                break
        return loss

    def _along(self, x: Tensor, t: float, d: Tensor) -> tuple[float, Tensor]:
        return self.fun(x + t * d)

    def _update_and_direction(self, g: Tensor) -> Tensor:
        """Store the last step's curvature pair (if ``y.s > 1e-10``) and return ``-H g``.

        One product with the buffers gives every inner product needed (``S g``, ``Y g`` and
        the new rows of the Gram matrices ``S Y^T``, ``Y Y^T``); one more forms the direction.
        """
        y, s = g - self.g_prev, self.d * self.t
        ys = y.dot(s)
        push = bool(ys > 1e-10)
        M = self.P @ (torch.stack([g, s, y], 1) if push else g[:, None])  # (2h, 3) or (2h, 1)
        h = self.h
        Sg, Yg = M[:h, 0].clone(), M[h:, 0].clone()
        if push:
            if self.count < h:
                slot, self.count = self.count, self.count + 1
            else:
                slot, self.head = self.head, (self.head + 1) % h
            yy = y.dot(y)
            self.P[slot], self.P[h + slot], self.rho[slot] = s, y, 1.0 / ys
            self.SY[slot], self.SY[:, slot], self.SY[slot, slot] = M[h:, 1], M[:h, 2], ys
            self.YY[slot], self.YY[:, slot], self.YY[slot, slot] = M[h:, 2], M[h:, 2], yy
            Sg[slot], Yg[slot] = s.dot(g), y.dot(g)
            self.h_diag = ys / yy
        return self._direction(g, Sg, Yg)

    def _direction(self, g: Tensor, Sg: Tensor, Yg: Tensor) -> Tensor:
        """``-H g`` by the two-loop recursion in matrix form, from ``S g`` and ``Y g`` (per slot).

        With pairs ordered oldest to newest, the first loop's ``alpha_i = rho_i s_i.(-g -
        sum_{j>i} alpha_j y_j)`` is the upper-triangular system ``(I + diag(rho) triu(SY, 1))
        alpha = -rho * S g``; then ``r_0 = H_0 (-g - Y^T alpha)``; the second loop adds
        ``c_i s_i`` with ``c_i = alpha_i - rho_i y_i.(r_0 + sum_{j<i} c_j s_j)``, the
        lower-triangular system ``(I + diag(rho) tril(SY^T, -1)) c = alpha - rho * Y r_0``,
        where ``Y r_0 = H_0 (-Y g - Y Y^T alpha)``. The direction is ``r_0 + S^T c``.
        """
        m, h = self.count, self.h
        if m == 0:  # no curvature pair accepted yet: torch's steepest-descent step
            return -self.h_diag * g
        order = (torch.arange(m, device=g.device) + self.head) % h  # slots, oldest first
        rho, SY = self.rho[order], self.SY[order][:, order]
        eye = torch.eye(m, dtype=g.dtype, device=g.device)
        upper = eye + rho[:, None] * SY.triu(1)
        alpha = torch.linalg.solve_triangular(upper, (-rho * Sg[order])[:, None], upper=True)[:, 0]
        y_r0 = self.h_diag * (-Yg[order] - self.YY[order][:, order] @ alpha)
        lower = eye + rho[:, None] * SY.T.tril(-1)
        c = torch.linalg.solve_triangular(lower, (alpha - rho * y_r0)[:, None], upper=False)[:, 0]
        coef = torch.zeros(2 * h, dtype=g.dtype, device=g.device)
        coef[order], coef[h + order] = c, -self.h_diag * alpha
        return self.P.T @ coef - self.h_diag * g
