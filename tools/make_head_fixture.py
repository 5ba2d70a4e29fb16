#!/usr/bin/env python3
"""A logistic-regression head fitted by scikit-learn on fixed "embeddings" (run by hand, not in CI).

Run from the repository root with the pinned environment of tools/requirements.txt:

    python tools/make_head_fixture.py

It (re)writes tests/fixtures/head/, deterministically:
  train3x8.npy      float32 [24, 2048]: 3 classes x 8 examples (rows 0-7 class 0, 8-15 class 1, 16-23 class 2),
                    non-negative like post-ReLU pooled features: max(0, shared + class offset + 0.25 N)
  heldout3x8.npy    float32 [6, 2048]: 2 more points per class from the same distributions (held out)
  train3x1.npy      float32 [3, 2048]: 1 example per class (class k = row k)
  heldout3x1.npy    float32 [3, 2048]: 1 held-out point per class
  train2x8.npy      float32 [16, 2048]: the first two classes of train3x8 (rows 0-15)
  heldout2x8.npy    float32 [4, 2048]: the first two classes of heldout3x8 (rows 0-3)
  coef-<case>.npy   float64 [3, 2048]: LogisticRegression.coef_ of each case ([1, 2048] for two classes)
  expected.json     per case: the data files, labels, C, the objective, the fit and its predictions (schema below)
The numbers come from numpy's PCG64 (default_rng(seed)): the Rust side reads the .npy files, it does not
regenerate them. sklearn fits on float64 copies of the stored float32 values (it would keep float32 input in
float32: LogisticRegression.fit checks X with dtype=[float64, float32]).

scikit-learn 1.9.1's objective (read in sklearn/linear_model/_logistic.py and _linear_loss.py):
  LogisticRegression(solver="lbfgs") with >= 3 classes fits the multinomial (softmax) model with a full
  [n_classes, n_features] coef_ and an intercept_ per class (HalfMultinomialLoss: loss_i = logsumexp(z_i) - z_i[y_i],
  the plain cross-entropy; "half" is only in the name). _logistic_regression_path passes LinearModelLoss
  l2_reg_strength = 1 / (C * sw_sum) (sw_sum = n_samples without sample weights) and L-BFGS-B minimises
      (1/n) * sum_i CE_i + (1 / (2 C n)) * ||coef||_F^2          (LinearModelLoss.loss: mean loss + l2/2 ||w||^2)
  = (1 / (C n)) * [ C * sum_i CE_i + 0.5 * ||coef||_F^2 ]      (the comment in _logistic.py: "C * sum(pointwise_loss)
  + penalty"); the intercept is NOT penalised (LinearModelLoss.l2_penalty gets the weights without the intercept
  column). So a solver minimising mean CE + (l2/2) ||W||^2 solves the same problem with l2 = 1 / (C n).
  Options: "gtol": tol (max |projected gradient| of the scaled objective), "ftol": 64 * eps, "maxls": 50.
  Two classes: sklearn fits the binary model instead, one coef_ row w (= w_1 - w_0 of the multinomial) and
  loss (1/n) sum CE + 1/(2 C' n) ||w||^2. The multinomial optimum has w_0 = -w_1 (its rows sum to 0), so its
  penalty 1/(2Cn) (||w_0||^2 + ||w_1||^2) = 1/(4Cn) ||w||^2: the same problem as the binary one with C' = 2C.
  The 2-class case records the multinomial C (and l2_equivalent = 1/(C n)) and fits sklearn with C' = 2C
  (sklearn_params.C); its objective and gradient are those of the multinomial form, W = [-w/2, w/2],
  b = [-b'/2, b'/2] (intercept holds this b).
  Identifiability: the loss is unchanged by adding one vector to every row of [coef | intercept]; the penalty fixes
  coef (its rows sum to 0 at the optimum: sum_k grad_k of the loss is 0), but not the intercept: only intercept
  differences are determined. L-BFGS starts at 0 and every gradient's intercept part sums to 0 over classes, so
  sklearn's intercepts sum to ~0; compare intercepts after subtracting their mean, or compare probabilities.

expected.json: {"generated_by", "objective", "cases": {case: {...}}} with each case:
  train (npy), heldout (npy), labels [n] (class of each train row), heldout_labels, n_samples, n_features,
  n_classes, C, l2_equivalent (= 1/(C n), for "mean CE + l2/2 ||W||^2"), sklearn_params,
  coef (npy, float64 [3, 2048]), coef_sha256 (of its little-endian float64 bytes), intercept [3],
  intercept_sum, coef_column_sum_max_abs (max over features of |sum_k coef[k, j]|), n_iter,
  objective_mean_form (= (1/n) sum CE + 1/(2Cn) ||W||^2 at the fit), objective_sum_form (= C sum CE + 0.5 ||W||^2),
  gradient_max_abs (of the mean form, float64, at the fit: how converged it is),
  train_predicted [n], train_proba [n][3], heldout_predicted, heldout_proba, train_decision [n][3] (X W^T + b),
  newton_reference: the same problem solved by solver="newton-cholesky", tol 1e-14 (full Hessian): its n_iter,
    intercept, gradient_max_abs, and coef/intercept/proba max abs differences from the lbfgs fit, i.e. how exact
    the lbfgs numbers are (lbfgs stops on ftol = 64 eps with a gradient ~1e-8; the intercept is the least
    determined part, ~4e-5 at C = 1).
"""

import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one BLAS thread: the same sums, so the same bits, on every run

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.special import logsumexp, softmax
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "head"
D, K = 2048, 3


def multinomial_form(clf):
    """coef_ and intercept_ as a full [k, D] matrix: for two classes, the binary w as [-w/2, w/2]."""
    W, b = clf.coef_, clf.intercept_
    if W.shape[0] == 1:
        return np.vstack([-W / 2, W / 2]), np.array([-b[0] / 2, b[0] / 2])
    return W, b


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def save_npy(name: str, a: np.ndarray):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(npy_bytes(a))


def embeddings(seed: int, per_class: int, heldout_per_class: int):
    """Non-negative 2048-d points: max(0, shared + offset_k + 0.25 * N), class-major rows (float32)."""
    rng = np.random.default_rng(seed)
    shared = rng.gamma(2.0, 0.15, D)  # mean 0.3, like pooled post-ReLU features
    offsets = np.zeros((K, D))
    for k in range(K):
        dims = rng.choice(D, 256, replace=False)
        offsets[k, dims] = rng.uniform(0.2, 0.8, 256)

    def draw(m):
        x = shared[None, None, :] + offsets[:, None, :] + 0.25 * rng.standard_normal((K, m, D))
        return np.maximum(x, 0.0).reshape(K * m, D).astype(np.float32), np.repeat(np.arange(K), m)

    return draw(per_class), draw(heldout_per_class)


def objective(W, b, X, y, C):
    z = X @ W.T + b
    ce = logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    n = len(y)
    mean_form = ce.mean() + 0.5 / (C * n) * np.sum(W * W)
    sum_form = C * ce.sum() + 0.5 * np.sum(W * W)
    p = softmax(z, axis=1)
    p[np.arange(n), y] -= 1.0
    gW = p.T @ X / n + W / (C * n)
    gb = p.sum(axis=0) / n
    return float(mean_form), float(sum_form), float(max(np.abs(gW).max(), np.abs(gb).max()))


def fit_case(name, train, heldout, C):
    (x32, y), (h32, hy) = train, heldout
    X, H = x32.astype(np.float64), h32.astype(np.float64)
    k = len(np.unique(y))
    c_sklearn = C if k > 2 else 2 * C  # two classes: the binary model, C' = 2C (see the docstring)
    params = dict(solver="lbfgs", C=c_sklearn, tol=1e-10, max_iter=10000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning / FutureWarning allowed
        clf = LogisticRegression(**params).fit(X, y)
    assert clf.coef_.shape == (k if k > 2 else 1, D) and clf.coef_.dtype == np.float64 and list(clf.classes_) == list(range(k))
    W, b = multinomial_form(clf)
    n = len(y)
    mean_form, sum_form, gmax = objective(W, b, X, y, C)
    assert gmax < 1e-6, gmax
    assert np.allclose(clf.predict_proba(X), softmax(X @ W.T + b, axis=1), atol=1e-12, rtol=0)
    save_npy(f"coef-{name}.npy", np.ascontiguousarray(clf.coef_, dtype="<f8"))
    # how far lbfgs (stopped by ftol = 64 eps before gtol) is from the exact optimum: Newton with a full Hessian
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = LogisticRegression(solver="newton-cholesky", C=c_sklearn, tol=1e-14, max_iter=100).fit(X, y)
    exact = {
        "sklearn_params": {"solver": "newton-cholesky", "C": c_sklearn, "tol": 1e-14, "max_iter": 100},
        "n_iter": int(ref.n_iter_[0]),
        "intercept": [float(v) for v in ref.intercept_],
        "gradient_max_abs": objective(*multinomial_form(ref), X, y, C)[2],
        "coef_max_abs_diff": float(np.abs(ref.coef_ - W).max()),
        "intercept_max_abs_diff": float(np.abs(ref.intercept_ - b).max()),
        "train_proba_max_abs_diff": float(np.abs(ref.predict_proba(X) - clf.predict_proba(X)).max()),
        "heldout_proba_max_abs_diff": float(np.abs(ref.predict_proba(H) - clf.predict_proba(H)).max()),
    }
    return {
        "n_samples": n,
        "n_features": D,
        "n_classes": k,
        "labels": [int(v) for v in y],
        "heldout_labels": [int(v) for v in hy],
        "C": C,
        "l2_equivalent": 1.0 / (C * n),
        "sklearn_params": params,
        "coef": f"coef-{name}.npy",
        "coef_sha256": hashlib.sha256(np.ascontiguousarray(clf.coef_, dtype="<f8").tobytes()).hexdigest(),
        "intercept": [float(v) for v in b],
        "intercept_sum": float(b.sum()),
        "coef_column_sum_max_abs": float(np.abs(W.sum(axis=0)).max()),
        "n_iter": int(clf.n_iter_[0]),
        "objective_mean_form": mean_form,
        "objective_sum_form": sum_form,
        "gradient_max_abs": gmax,
        "train_predicted": [int(v) for v in clf.predict(X)],
        "train_proba": [[float(v) for v in row] for row in clf.predict_proba(X)],
        # two classes: the multinomial form's X W^T + b (sklearn's binary decision is one column)
        "train_decision": [[float(v) for v in row] for row in (clf.decision_function(X) if k > 2 else X @ W.T + b)],
        "heldout_predicted": [int(v) for v in clf.predict(H)],
        "heldout_proba": [[float(v) for v in row] for row in clf.predict_proba(H)],
        "newton_reference": exact,
    }


def main():
    os.chdir(ROOT)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_fixtures import write_compact_json

    t8, h8 = embeddings(7, 8, 2)
    t1, h1 = embeddings(8, 1, 1)
    save_npy("train3x8.npy", t8[0])
    save_npy("heldout3x8.npy", h8[0])
    save_npy("train3x1.npy", t1[0])
    save_npy("heldout3x1.npy", h1[0])
    # Two classes: the first two of the 3x8 set.
    t2 = (t8[0][:16], t8[1][:16])
    h2 = (h8[0][:4], h8[1][:4])
    save_npy("train2x8.npy", t2[0])
    save_npy("heldout2x8.npy", h2[0])
    cases = {}
    for name, tr, ho, files, C in [
        ("3x8_C1", t8, h8, ("train3x8.npy", "heldout3x8.npy"), 1.0),
        ("3x8_C0.01", t8, h8, ("train3x8.npy", "heldout3x8.npy"), 0.01),
        ("3x1_C1", t1, h1, ("train3x1.npy", "heldout3x1.npy"), 1.0),
        ("2x8_C1", t2, h2, ("train2x8.npy", "heldout2x8.npy"), 1.0),
    ]:
        cases[name] = {"train": files[0], "heldout": files[1], **fit_case(name, tr, ho, C)}
    res = {
        "generated_by": {
            "script": "tools/make_head_fixture.py",
            "python": sys.version.split()[0],
            "scikit-learn": sklearn.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "float_format": "float64 JSON numbers (shortest round trip); npy: train/heldout <f4, coef <f8",
        },
        "objective": "sklearn minimises (1/n) sum_i CE_i + 1/(2 C n) ||coef||_F^2, i.e. (1/(C n)) * "
                     "[0.5 ||coef||_F^2 + C * sum_i CE_i]; CE_i = logsumexp(z_i) - z_i[y_i], z_i = coef x_i + "
                     "intercept (multinomial softmax, full 3-row coef); intercept not penalised; equivalent to "
                     "mean CE + (l2/2) ||W||^2 with l2 = 1/(C n); L-BFGS-B from 0, gtol = tol = 1e-10",
        "cases": cases,
    }
    write_compact_json(OUT / "expected.json", res)
    for name, c in cases.items():
        print(f"{name}: n_iter {c['n_iter']}  grad {c['gradient_max_abs']:.1e}  intercept {c['intercept']}  "
              f"train acc {np.mean(np.array(c['train_predicted']) == np.array(c['labels']))}  "
              f"heldout {c['heldout_predicted']} vs {c['heldout_labels']}  max proba "
              f"{max(max(r) for r in c['train_proba']):.4f}")


if __name__ == "__main__":
    main()
