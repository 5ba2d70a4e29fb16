//! The head's optimiser: L-BFGS on the L2-penalised multinomial logistic loss, in the span
//! of the training views when that is smaller than the feature space (see `head`).

/// The fit on plain rows: `x` is `[n][d]`, `y` the class of each row.
#[derive(Debug, Clone)]
pub struct Fit {
    /// `[k][d]`.
    pub weights: Vec<f64>,
    /// Summing to zero (only differences between biases matter).
    pub bias: Vec<f64>,
    pub iterations: usize,
    pub gradient: f64,
}

/// Minimises mean CE + (l2/2)||W||^2 over the rows of `x` (`[n][d]`, classes `y` < `k`).
pub fn fit(x: &[f32], d: usize, y: &[usize], k: usize, l2: f64) -> Fit {
    let n = y.len();
    assert_eq!(x.len(), n * d);
    let reduced = Reduced::new(x, n, d);
    let problem = Problem { m: &reduced.m, r: reduced.r, y, k, l2 };
    let solution = minimize(&problem, vec![0.0; k * reduced.r + k], GTOL);
    let (weights, bias) = reduced.head(&solution.theta, k);
    Fit { weights, bias, iterations: solution.iterations, gradient: solution.gradient }
}


/// Stop when no gradient component is larger than this (the objective is of order 1), or
/// when f64 can no longer tell a step's decrease from rounding.
pub(super) const GTOL: f64 = 1e-9;
pub(super) const LOO_GTOL: f64 = 1e-6;
const MAX_ITERATIONS: usize = 5000;
/// L-BFGS history: pairs of steps and gradient changes kept.
const HISTORY: usize = 10;

/// The training views, centred, in coordinates of an orthonormal basis of their span when
/// that is smaller than the feature space: W = V B with B's rows orthonormal, so
/// (X - mean) W^T = M V^T and ||W|| = ||V||, the same problem in r < n dimensions.
/// Centring is exact because the bias is not penalised (W x + b = W (x - mean) + b'), and
/// it removes the large direction all features share, which would slow L-BFGS down.
pub(super) struct Reduced {
    /// `[n][r]`.
    pub m: Vec<f64>,
    pub r: usize,
    /// `[d]`: b = b' - W mean.
    mean: Vec<f64>,
    /// Without it, M = X - mean (r = d). With it, B = L_p^-1 X_p: the pivot rows L_p (`[r][r]`,
    /// lower triangular) of the Cholesky factor, and the pivot rows X_p (`[r][d]`) of X - mean.
    basis: Option<(Vec<f64>, Vec<f64>)>,
}

impl Reduced {
    pub fn new(x: &[f32], n: usize, d: usize) -> Reduced {
        let mut mean = vec![0.0; d];
        for row in x.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64 / n as f64;
            }
        }
        let xf: Vec<f64> = x.chunks_exact(d).flat_map(|row| row.iter().zip(&mean).map(|(&v, m)| v as f64 - m)).collect();
        if 2 * n > d {
            return Reduced { m: xf, r: d, mean, basis: None };
        }
        let row = |i: usize| &xf[i * d..(i + 1) * d];
        let mut gram = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = dot(row(i), row(j));
                gram[i * n + j] = v;
                gram[j * n + i] = v;
            }
        }
        // Pivoted Cholesky, G = L L^T with L [n][r]: the row left with the largest residual
        // (distance from the span so far) becomes the next pivot; rows within 1e-6 (relative)
        // of the span add no dimension (a duplicate photo, a symmetric photo's mirror image).
        let mut l = vec![0.0; n * n];
        let mut residual: Vec<f64> = (0..n).map(|i| gram[i * n + i]).collect();
        let tol = 1e-12 * residual.iter().fold(0.0f64, |m, &v| m.max(v));
        let mut pivots = Vec::new();
        let mut picked = vec![false; n];
        for col in 0..n {
            let best = (0..n).filter(|&i| !picked[i]).max_by(|&a, &b| residual[a].total_cmp(&residual[b]).then(b.cmp(&a)));
            let Some(p) = best.filter(|&p| residual[p] > tol) else { break };
            picked[p] = true;
            pivots.push(p);
            let lpp = residual[p].sqrt();
            l[p * n + col] = lpp;
            for i in (0..n).filter(|&i| !picked[i]) {
                let v = (gram[i * n + p] - dot(&l[i * n..i * n + col], &l[p * n..p * n + col])) / lpp;
                l[i * n + col] = v;
                residual[i] -= v * v;
            }
        }
        let r = pivots.len();
        let m: Vec<f64> = (0..n).flat_map(|i| l[i * n..i * n + r].iter().copied()).collect();
        let lp: Vec<f64> = pivots.iter().flat_map(|&p| m[p * r..(p + 1) * r].iter().copied()).collect();
        let basis: Vec<f64> = pivots.iter().flat_map(|&p| xf[p * d..(p + 1) * d].iter().copied()).collect();
        Reduced { m, r, mean, basis: Some((lp, basis)) }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.m[i * self.r..(i + 1) * self.r]
    }

    /// W = V B (`[k][d]`), and b = b' - W mean.
    pub fn head(&self, theta: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.mean.len();
        let (v, b) = theta.split_at(k * self.r);
        let w = self.weights(v, k);
        let mut bias: Vec<f64> = (0..k).map(|c| b[c] - dot(&w[c * d..(c + 1) * d], &self.mean)).collect();
        // Only differences between biases matter: keep them summing to zero.
        let mean_b = bias.iter().sum::<f64>() / k as f64;
        bias.iter_mut().for_each(|b| *b -= mean_b);
        (w, bias)
    }

    fn weights(&self, v: &[f64], k: usize) -> Vec<f64> {
        let Some((lp, xp)) = &self.basis else { return v.to_vec() };
        let (r, d) = (self.r, self.mean.len());
        let mut w = vec![0.0; k * d];
        for c in 0..k {
            // coef L_p = v_c (L_p lower triangular: back substitution), then W_c = coef X_p.
            let vc = &v[c * r..(c + 1) * r];
            let mut coef = vec![0.0; r];
            for j in (0..r).rev() {
                let s: f64 = (j + 1..r).map(|t| coef[t] * lp[t * r + j]).sum();
                coef[j] = (vc[j] - s) / lp[j * r + j];
            }
            for (t, &a) in coef.iter().enumerate() {
                axpy(a, &xp[t * d..(t + 1) * d], &mut w[c * d..(c + 1) * d]);
            }
        }
        w
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four running sums: vectorizable, and the same order of additions on every platform.
    let mut acc = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for j in 0..4 {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, &x| m.max(x.abs()))
}

/// The objective over rows `m` (`[n][r]`), parameters theta = [V (`[k][r]`) | b (`[k]`)].
pub(super) struct Problem<'a> {
    pub m: &'a [f64],
    pub r: usize,
    pub y: &'a [usize],
    pub k: usize,
    pub l2: f64,
}

impl Problem<'_> {
    fn logits(&self, theta: &[f64], row: &[f64], z: &mut [f64]) {
        let (v, b) = theta.split_at(self.k * self.r);
        for (c, z) in z.iter_mut().enumerate() {
            *z = b[c] + dot(row, &v[c * self.r..(c + 1) * self.r]);
        }
    }

    pub fn predict(&self, theta: &[f64], row: &[f64]) -> usize {
        let mut z = vec![0.0; self.k];
        self.logits(theta, row, &mut z);
        (0..self.k).fold(0, |best, c| if z[c] > z[best] { c } else { best })
    }

    /// The objective at theta, its gradient written into `grad`.
    fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (k, r) = (self.k, self.r);
        let n = self.y.len() as f64;
        grad.fill(0.0);
        let (gv, gb) = grad.split_at_mut(k * r);
        let mut z = vec![0.0; k];
        let mut loss = 0.0;
        for (row, &y) in self.m.chunks_exact(r.max(1)).zip(self.y) {
            let row = &row[..r];
            self.logits(theta, row, &mut z);
            let max = z.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let lse = max + z.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
            loss += lse - z[y];
            for c in 0..k {
                let residual = ((z[c] - lse).exp() - if c == y { 1.0 } else { 0.0 }) / n;
                gb[c] += residual;
                axpy(residual, row, &mut gv[c * r..(c + 1) * r]);
            }
        }
        let v = &theta[..k * r];
        axpy(self.l2, v, gv);
        loss / n + 0.5 * self.l2 * dot(v, v)
    }
}

pub(super) struct Solution {
    pub theta: Vec<f64>,
    pub iterations: usize,
    pub gradient: f64,
}

/// L-BFGS from `theta` until the largest gradient component is at most `gtol`, or f64
/// can no longer make progress.
pub(super) fn minimize(p: &Problem, mut theta: Vec<f64>, gtol: f64) -> Solution {
    let dim = theta.len();
    let mut g = vec![0.0; dim];
    let mut f = p.eval(&theta, &mut g);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let (mut trial, mut g_trial) = (vec![0.0; dim], vec![0.0; dim]);
    let mut iterations = 0;
    while iterations < MAX_ITERATIONS && max_abs(&g) > gtol {
        let mut d: Vec<f64> = g.iter().map(|x| -x).collect();
        two_loop(&history, &mut d);
        let mut slope = dot(&g, &d);
        if slope.is_nan() || slope >= 0.0 {
            history.clear();
            d = g.iter().map(|x| -x).collect();
            slope = -dot(&g, &g);
        }
        let first = if history.is_empty() { (1.0 / dot(&g, &g).sqrt()).min(1.0) } else { 1.0 };
        let line = Line { p, theta: &theta, d: &d, f0: f, slope0: slope };
        let Some(f_new) = line.search(first, &mut trial, &mut g_trial) else {
            // No step decreases f within f64's precision: as close as it gets (or, once,
            // a stale history: start again from steepest descent).
            if history.is_empty() {
                break;
            }
            history.clear();
            continue;
        };
        let s: Vec<f64> = trial.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = g_trial.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        if sy > 0.0 {
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back((s, yv, 1.0 / sy));
        }
        std::mem::swap(&mut theta, &mut trial);
        std::mem::swap(&mut g, &mut g_trial);
        let decrease = f - f_new;
        f = f_new;
        iterations += 1;
        if decrease <= f64::EPSILON * f.abs() && history.len() > 1 && max_abs(&g) <= gtol.max(1e-7) {
            break;
        }
    }
    let gradient = max_abs(&g);
    Solution { theta, iterations, gradient }
}

/// d <- H d, H the L-BFGS inverse Hessian approximation.
fn two_loop(history: &std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)>, d: &mut [f64]) {
    let mut alphas = Vec::with_capacity(history.len());
    for (s, y, rho) in history.iter().rev() {
        let a = rho * dot(s, d);
        axpy(-a, y, d);
        alphas.push(a);
    }
    if let Some((s, y, _)) = history.back() {
        let gamma = dot(s, y) / dot(y, y);
        d.iter_mut().for_each(|x| *x *= gamma);
    }
    for ((s, y, rho), a) in history.iter().zip(alphas.into_iter().rev()) {
        let beta = rho * dot(y, d);
        axpy(a - beta, s, d);
    }
}

/// The objective along a line: theta + a d.
struct Line<'a> {
    p: &'a Problem<'a>,
    theta: &'a [f64],
    d: &'a [f64],
    /// The value and slope at a = 0.
    f0: f64,
    slope0: f64,
}

/// A point on the line: (step, value, slope).
type Point = (f64, f64, f64);

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

impl Line<'_> {
    /// Evaluates the point at step `a`, leaving it in `x` and its gradient in `g`.
    fn at(&self, a: f64, x: &mut [f64], g: &mut [f64]) -> Point {
        for ((x, &t), &d) in x.iter_mut().zip(self.theta).zip(self.d) {
            *x = t + a * d;
        }
        let f = self.p.eval(x, g);
        (a, f, dot(g, self.d))
    }

    /// Sufficient decrease. Decreases below rounding count as none (an approximate Wolfe
    /// condition): near the optimum, f's changes are smaller than its rounding errors.
    fn armijo(&self, (a, f, _): Point) -> bool {
        f.is_finite() && f <= self.f0 + C1 * a * self.slope0 + 1e-14 * self.f0.abs()
    }

    fn curvature(&self, (_, _, s): Point) -> bool {
        s.abs() <= -C2 * self.slope0
    }

    /// A step meeting the strong Wolfe conditions (Nocedal and Wright, algorithms 3.5 and 3.6,
    /// with safeguarded cubic interpolation), from `first`. Leaves the point in `x`, its
    /// gradient in `g`; returns its value, or None when no step decreases f.
    fn search(&self, first: f64, x: &mut [f64], g: &mut [f64]) -> Option<f64> {
        let mut prev = (0.0, self.f0, self.slope0);
        let mut a = first;
        for i in 0..40 {
            let point = self.at(a, x, g);
            if !self.armijo(point) || (i > 0 && point.1 >= prev.1) {
                return self.zoom(prev, point, x, g);
            }
            if self.curvature(point) {
                return Some(point.1);
            }
            if point.2 >= 0.0 {
                return self.zoom(point, prev, x, g);
            }
            prev = point;
            a *= 2.0;
        }
        None
    }

    /// Narrows a bracket [lo, hi] that holds an acceptable step.
    fn zoom(&self, mut lo: Point, mut hi: Point, x: &mut [f64], g: &mut [f64]) -> Option<f64> {
        for _ in 0..40 {
            let point = self.at(cubic_min(lo, hi), x, g);
            if !self.armijo(point) || point.1 >= lo.1 {
                hi = point;
            } else {
                if self.curvature(point) {
                    return Some(point.1);
                }
                if point.2 * (hi.0 - lo.0) >= 0.0 {
                    hi = lo;
                }
                lo = point;
            }
            if (hi.0 - lo.0).abs() <= 1e-16 * lo.0.abs().max(1e-300) {
                break;
            }
        }
        // The best point found, if it decreases f at all.
        (lo.0 > 0.0 && lo.1 < self.f0).then(|| self.at(lo.0, x, g).1)
    }
}

/// The minimiser of the cubic through two points with their slopes, kept inside the middle
/// 80% of the bracket (else its midpoint).
fn cubic_min(lo: Point, hi: Point) -> f64 {
    let ((a, fa, da), (b, fb, db)) = (lo, hi);
    let (left, right) = (a.min(b), a.max(b));
    let mid = 0.5 * (a + b);
    if !fb.is_finite() {
        return mid;
    }
    let d1 = da + db - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - da * db;
    if disc < 0.0 {
        return mid;
    }
    let d2 = (b - a).signum() * disc.sqrt();
    let t = b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2);
    let margin = 0.1 * (right - left);
    if t.is_finite() && t >= left + margin && t <= right - margin {
        t
    } else {
        mid
    }
}

