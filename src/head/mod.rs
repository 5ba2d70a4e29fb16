//! Your own classes: a linear head on the pooled features (what `embed` returns: 2,048
//! values for BiT-50), trained on the device from a few examples per class, and the file
//! it is kept and shared in. The `bit50` command and the wasm module both use this module,
//! so a head trained in the browser works natively and the other way round.
//!
//! The method: multinomial logistic regression with an L2 penalty on the weights (not on the
//! bias). Over the n training views (each example, plus its mirror image with flips) it
//! minimises
//!
//! ```text
//!     (1/n) sum_i CE(W x_i + b, y_i) + (l2/2) ||W||_F^2       CE(z, y) = logsumexp(z) - z_y
//! ```
//!
//! full-batch and deterministically, by L-BFGS (strong-Wolfe line search) until the gradient
//! vanishes to f64 precision. This is scikit-learn's `LogisticRegression(C=C)` with
//! l2 = 1/(C n); the default l2 is scikit-learn's default, C = 1, i.e. l2 = 1/n
//! (tests/head.rs checks the fit against scikit-learn's).
//!
//! With fewer views than half the features (the few-shot case) the problem is solved in the
//! span of the training views: the optimal W lies in it, so the views are rewritten in an
//! orthonormal basis of that span (from a pivoted Cholesky factor of their Gram matrix),
//! r <= n coordinates instead of d, and W is mapped back at the end. The same optimum,
//! found several times faster, which also makes the leave-one-out estimate affordable.
//!
//! The file (JSON; the same in the browser and natively):
//!
//! ```text
//! {"format": "bit50-head", "version": 1,
//!  "model": {"name": "bit-50", "sha256": "<the model's identity: Manifest::model_sha256>"},
//!  "features": 2048,                     the length of the feature vectors it takes
//!  "classes": ["cat", "dog"],            its labels, in the order of the rows below
//!  "weights": [[2048 numbers], [...]],   W: one row per class
//!  "bias": [0.12, -0.12],                b: one per class
//!  "training": {"l2", "flips", "examples": [per class], "iterations", "gradient",
//!               "train_correct", "loo": {"correct", "counted"} | null}}   (informative)
//! ```
//!
//! A class's probability for features x is softmax(W x + b). Nothing in a file is trusted:
//! its size, every count and every number are checked before use.

mod solver;

pub use solver::{fit, Fit};

use crate::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use solver::{minimize, Problem, Reduced, GTOL, LOO_GTOL};

pub const FORMAT: &str = "bit50-head";
pub const VERSION: u32 = 1;
/// The most classes a head may have.
pub const MAX_CLASSES: usize = 100;
/// The most views a head trains on: examples (photos), each counted twice with flips. 10,000
/// views of 2,048 features take about 4 s natively with 10 classes (docs/web.md has the
/// measured times), and about 250 MB while training; a few-shot head needs far fewer.
pub const MAX_VIEWS: usize = 10_000;
/// The leave-one-out estimate refits once per example: above this many it is skipped.
pub const MAX_LOO_EXAMPLES: usize = 200;
pub const MAX_LABEL_CHARS: usize = 100;
pub const MAX_FEATURES: usize = 1 << 16;
/// The largest head file read (100 classes of 2,048 weights take about 2.5 MB).
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// The accepted range of the L2 penalty; without one, classes that features separate
/// (always the case with fewer examples than features) have no best fit.
pub const L2_RANGE: (f64, f64) = (1e-8, 1e4);

/// The model a head was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub sha256: String,
}

/// A trained head, as its file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub format: String,
    pub version: u32,
    pub model: ModelRef,
    pub features: usize,
    pub classes: Vec<String>,
    /// `[classes][features]`.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
}

/// How a head was trained and how well it fits (informative; not needed to use it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub l2: f64,
    pub flips: bool,
    /// Examples (photos) per class; with flips each was two views.
    pub examples: Vec<usize>,
    pub iterations: usize,
    /// The largest gradient component left at the end (how converged the fit is).
    pub gradient: f64,
    /// Examples whose own class is the most probable one.
    pub train_correct: usize,
    /// Leave-one-out: each example classified by a head trained without it.
    pub loo: Option<Loo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loo {
    pub correct: usize,
    /// Examples left out in turn: all but those alone in their class (without them the class
    /// would have nothing to learn from) and none above `MAX_LOO_EXAMPLES`.
    pub counted: usize,
}

/// Training data: views (rows of `features` values), each with its class and the example
/// it shows (a photo and, with flips, its mirror image are two views of one example).
#[derive(Debug, Clone, Default)]
pub struct TrainingSet {
    features: usize,
    rows: Vec<f32>,
    class: Vec<usize>,
    example: Vec<usize>,
}

impl TrainingSet {
    pub fn new(features: usize) -> Self {
        TrainingSet { features, ..Default::default() }
    }

    /// Adds one example of `class`: its views' features.
    pub fn push(&mut self, class: usize, views: &[&[f32]]) -> Result<()> {
        let example = self.examples();
        for v in views {
            if v.len() != self.features {
                return Err(error(ErrorKind::BadInput, format!("example {}: {} features, expected {}", example + 1, v.len(), self.features)));
            }
            self.rows.extend_from_slice(v);
            self.class.push(class);
            self.example.push(example);
        }
        Ok(())
    }

    /// From flat arrays: `rows` `[views][features]`, and per view its class and its example's
    /// number (0, 1, 2, ...: the views of one example next to each other).
    pub fn from_flat(features: usize, rows: Vec<f32>, class: Vec<usize>, example: Vec<usize>) -> Result<Self> {
        let bad = |message: String| Err(error(ErrorKind::BadInput, message));
        if features == 0 || features > MAX_FEATURES {
            return bad(format!("{features} features (expected 1 to {MAX_FEATURES})"));
        }
        if class.len() != example.len() || Some(rows.len()) != class.len().checked_mul(features) {
            return bad(format!("{} feature values for {} views of {features} features ({} example numbers)", rows.len(), class.len(), example.len()));
        }
        // 0, 0, 1, 2, 2, ...: each view of the example before, or the next example's first.
        let mut next = 0;
        for &e in &example {
            if e == next {
                next += 1;
            } else if e + 1 != next {
                return bad(format!("example number {e} where {next} (a new example) or {} (the last one's next view) was expected", next.saturating_sub(1)));
            }
        }
        Ok(TrainingSet { features, rows, class, example })
    }

    pub fn features(&self) -> usize {
        self.features
    }

    pub fn examples(&self) -> usize {
        self.example.last().map_or(0, |e| e + 1)
    }

    pub fn views(&self) -> usize {
        self.class.len()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// None: 1/n over the n views (scikit-learn's default, C = 1).
    pub l2: Option<f64>,
    /// Recorded in the file: whether the examples came with their mirror images.
    pub flips: bool,
    /// Compute the leave-one-out estimate.
    pub loo: bool,
}

/// One custom class of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomClass {
    pub index: usize,
    pub label: String,
    pub prob: f32,
}

fn error(kind: ErrorKind, message: String) -> Error {
    Error::new(kind, message)
}

/// Labels must be present, trimmed, short, printable and distinct (ignoring case, since
/// "Cat" and "cat" would read as one class).
pub fn check_labels(labels: &[String], kind: ErrorKind, source: &str) -> Result<()> {
    for (i, label) in labels.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(error(kind, format!("{source}class {} has an empty label", i + 1)));
        }
        if label.trim() != label {
            return Err(error(kind, format!("{source}the label {label:?} has spaces at its ends")));
        }
        if label.chars().count() > MAX_LABEL_CHARS {
            return Err(error(kind, format!("{source}the label {:?}… is longer than {MAX_LABEL_CHARS} characters", label.chars().take(20).collect::<String>())));
        }
        if label.chars().any(char::is_control) {
            return Err(error(kind, format!("{source}the label {label:?} contains a control character")));
        }
        if let Some(first) = labels[..i].iter().find(|l| l.to_lowercase() == label.to_lowercase()) {
            let same = if first == label { String::new() } else { format!(" (as {first:?})") };
            return Err(error(kind, format!("{source}the label {label:?} is given twice{same}: each class needs its own label")));
        }
    }
    Ok(())
}

/// The classes of a head to train: 2 to `MAX_CLASSES` labels that pass `check_labels`.
pub fn check_classes(labels: &[String]) -> Result<()> {
    let k = labels.len();
    if k < 2 {
        let named = labels.first().map(|c| format!(": {c:?}")).unwrap_or_default();
        return Err(error(ErrorKind::BadInput, format!("a head needs at least two classes to tell apart (got {k}{named})")));
    }
    if k > MAX_CLASSES {
        return Err(error(ErrorKind::BadInput, format!("{k} classes: a head has at most {MAX_CLASSES}")));
    }
    check_labels(labels, ErrorKind::BadInput, "")
}

impl Head {
    /// Reads a head file; `source` names it in errors. Checks everything but the model it
    /// belongs to (`check_model`).
    pub fn parse(bytes: &[u8], source: &str) -> Result<Head> {
        let bad = |message: String| Err(error(ErrorKind::BadHead, format!("{source}: {message}")));
        if bytes.len() > MAX_FILE_BYTES {
            return bad(format!("{} bytes is more than a head file may have ({} MB)", bytes.len(), MAX_FILE_BYTES >> 20));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return bad("empty file, not a head".into());
        }
        let head: Head = match serde_json::from_slice(bytes) {
            Ok(head) => head,
            Err(e) if e.is_eof() => return bad(format!("the head file is truncated: it ends after {} bytes, inside its JSON", bytes.len())),
            Err(e) if e.is_syntax() => return bad(format!("not a bit50 head file: not valid JSON ({e})")),
            Err(e) => {
                // A JSON document, but not a head: say which part is wrong.
                let format = serde_json::from_slice::<serde_json::Value>(bytes).ok().and_then(|v| v.get("format").and_then(|f| f.as_str().map(String::from)));
                return match format {
                    Some(f) if f == FORMAT => bad(format!("a damaged head file ({e})")),
                    Some(f) => bad(format!("format {f:?}, not a {FORMAT} file")),
                    None => bad(format!("not a bit50 head file ({e})")),
                };
            }
        };
        if head.format != FORMAT {
            return bad(format!("format {:?}, not a {FORMAT} file", head.format));
        }
        if head.version != VERSION {
            return bad(format!("{FORMAT} version {}; this bit50 reads version {VERSION}", head.version));
        }
        head.check(source)?;
        Ok(head)
    }

    /// Every count and number consistent (for a parsed file and a trained head alike).
    fn check(&self, source: &str) -> Result<()> {
        let bad = |message: String| Err(error(ErrorKind::BadHead, format!("{source}: {message}")));
        let sha = &self.model.sha256;
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return bad(format!("the model's sha256 {:?} is not 64 hex digits", sha.chars().take(80).collect::<String>()));
        }
        if self.model.name.chars().count() > 200 {
            return bad("the model's name is over 200 characters".into());
        }
        if self.features == 0 || self.features > MAX_FEATURES {
            return bad(format!("{} features (expected 1 to {MAX_FEATURES})", self.features));
        }
        let k = self.classes.len();
        if !(2..=MAX_CLASSES).contains(&k) {
            return bad(format!("{k} classes (a head has 2 to {MAX_CLASSES})"));
        }
        check_labels(&self.classes, ErrorKind::BadHead, &format!("{source}: "))?;
        if self.weights.len() != k || self.bias.len() != k {
            return bad(format!("{k} classes but {} rows of weights and {} biases", self.weights.len(), self.bias.len()));
        }
        for (row, label) in self.weights.iter().zip(&self.classes) {
            if row.len() != self.features {
                return bad(format!("the weights of {label:?} have {} values; the head takes {} features", row.len(), self.features));
            }
        }
        if !self.weights.iter().flatten().chain(&self.bias).all(|x| x.is_finite()) {
            return bad("a weight or bias is not a finite number".into());
        }
        Ok(())
    }

    /// Refuses a head trained on another model, or one that does not fit its features.
    pub fn check_model(&self, model: &ModelRef, features: usize, source: &str) -> Result<()> {
        let short = |s: &str| s.chars().take(12).collect::<String>();
        if !self.model.sha256.eq_ignore_ascii_case(&model.sha256) {
            let sizes = if self.features != features { format!(", and it takes {} features where this model gives {features}", self.features) } else { String::new() };
            return Err(error(
                ErrorKind::OtherModel,
                format!(
                    "{source}: this head was trained on another model, {:?} (sha256 {}…), not on {:?} (sha256 {}…){sizes}; train it again on this model",
                    self.model.name,
                    short(&self.model.sha256),
                    model.name,
                    short(&model.sha256)
                ),
            ));
        }
        if self.features != features {
            return Err(error(ErrorKind::BadHead, format!("{source}: the head takes {} features but its model, {:?}, gives {features}: the file is damaged", self.features, model.name)));
        }
        Ok(())
    }

    /// The file's text (compact JSON, numbers as their shortest round-trip decimals).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a head serializes")
    }

    /// Probabilities of the classes, in the head's order.
    pub fn probabilities(&self, features: &[f32]) -> Vec<f64> {
        let z: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, &b)| b as f64 + w.iter().zip(features).map(|(&w, &x)| w as f64 * x as f64).sum::<f64>())
            .collect();
        softmax(&z)
    }

    /// Every class with its probability, most probable first. `features` must have
    /// `self.features` values (checked by the caller through `check_model`).
    pub fn classify(&self, features: &[f32]) -> Vec<CustomClass> {
        let p = self.probabilities(features);
        let mut out: Vec<CustomClass> = p.iter().enumerate().map(|(index, &prob)| CustomClass { index, label: self.classes[index].clone(), prob: prob as f32 }).collect();
        out.sort_by(|a, b| p[b.index].total_cmp(&p[a.index]).then(a.index.cmp(&b.index)));
        out
    }
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let e: Vec<f64> = z.iter().map(|&x| (x - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.into_iter().map(|x| x / total).collect()
}

/// Trains a head for `classes` on `set`.
pub fn train(classes: &[String], set: &TrainingSet, options: &Options, model: &ModelRef) -> Result<Head> {
    let (k, n, d) = (classes.len(), set.views(), set.features);
    let bad = |message: String| Err(error(ErrorKind::BadInput, message));
    check_classes(classes)?;
    if n > MAX_VIEWS {
        let flips = if n > set.examples() { format!(" ({n} with their mirror images)") } else { String::new() };
        return bad(format!("{} examples{flips}: a head trains on at most {MAX_VIEWS} (or {} with flips), which take a few seconds; a few per class is what it is for", set.examples(), MAX_VIEWS / 2));
    }
    let mut per_class = vec![0usize; k];
    for (i, (&class, row)) in set.class.iter().zip(set.rows.chunks_exact(d)).enumerate() {
        let e = set.example[i];
        let Some(count) = per_class.get_mut(class) else {
            return bad(format!("example {} is of class {class}, but there are {k} classes", e + 1));
        };
        if i == 0 || set.example[i - 1] != e {
            *count += 1;
        } else if set.class[i - 1] != class {
            return bad(format!("example {}: its views are of different classes", e + 1));
        }
        if !row.iter().all(|x| x.is_finite()) {
            return bad(format!("example {} of {:?}: its features are not all finite numbers", e + 1, classes[class]));
        }
    }
    if let Some(empty) = per_class.iter().position(|&c| c == 0) {
        return bad(format!("the class {:?} has no examples: add at least one photo to it", classes[empty]));
    }
    let l2 = options.l2.unwrap_or(1.0 / n as f64);
    if !(L2_RANGE.0..=L2_RANGE.1).contains(&l2) {
        return bad(format!("l2 {l2}: expected a number from {:e} to {:e}", L2_RANGE.0, L2_RANGE.1));
    }

    let (y, owner) = (&set.class, &set.example);
    let reduced = Reduced::new(&set.rows, n, d);
    let problem = Problem { m: &reduced.m, r: reduced.r, y, k, l2 };
    let solution = minimize(&problem, vec![0.0; k * reduced.r + k], GTOL);
    // Each example by its first view (the photo itself, not its mirror image).
    let first_rows: Vec<usize> = (0..n).filter(|&i| i == 0 || owner[i] != owner[i - 1]).collect();
    let train_correct = first_rows.iter().filter(|&&i| problem.predict(&solution.theta, reduced.row(i)) == y[i]).count();
    let loo = (options.loo && first_rows.len() <= MAX_LOO_EXAMPLES).then(|| {
        let mut loo = Loo { correct: 0, counted: 0 };
        for (e, &first) in first_rows.iter().enumerate() {
            if per_class[y[first]] < 2 {
                continue;
            }
            let keep: Vec<usize> = (0..n).filter(|&i| owner[i] != e).collect();
            let m: Vec<f64> = keep.iter().flat_map(|&i| reduced.row(i).iter().copied()).collect();
            let ys: Vec<usize> = keep.iter().map(|&i| y[i]).collect();
            let without = Problem { m: &m, r: reduced.r, y: &ys, k, l2 };
            // From the full fit, which is close: a few iterations each. A prediction needs
            // less precision than the head itself.
            let refit = minimize(&without, solution.theta.clone(), LOO_GTOL);
            loo.counted += 1;
            loo.correct += usize::from(without.predict(&refit.theta, reduced.row(first)) == y[first]);
        }
        loo
    });
    let (w, b) = reduced.head(&solution.theta, k);
    let head = Head {
        format: FORMAT.into(),
        version: VERSION,
        model: model.clone(),
        features: d,
        classes: classes.to_vec(),
        weights: w.chunks_exact(d).map(|row| row.iter().map(|&v| v as f32).collect()).collect(),
        bias: b.iter().map(|&v| v as f32).collect(),
        // No estimate where nothing could be left out.
        training: Some(Training { l2, flips: options.flips, examples: per_class, iterations: solution.iterations, gradient: solution.gradient, train_correct, loo: loo.filter(|l| l.counted > 0) }),
    };
    head.check("the trained head")?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelRef {
        ModelRef { name: "test".into(), sha256: "ab".repeat(32) }
    }

    fn point(class: usize, i: usize) -> Vec<f32> {
        (0..6).map(|j| if j % 2 == class { 1.0 + 0.1 * i as f32 } else { 0.1 * ((i + j) % 3) as f32 }).collect()
    }

    /// Two well separated classes in 6 dimensions, 3 examples each (of those `classes`).
    fn set(classes: &[usize]) -> TrainingSet {
        let mut set = TrainingSet::new(6);
        for i in (0..6).filter(|i| classes.contains(&(i % 2))) {
            set.push(i % 2, &[&point(i % 2, i)]).unwrap();
        }
        set
    }

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn trains_separates_and_round_trips_through_its_file() {
        let head = train(&labels(&["a", "b"]), &set(&[0, 1]), &Options { loo: true, ..Options::default() }, &model()).unwrap();
        let t = head.training.as_ref().unwrap();
        assert_eq!((t.train_correct, t.examples.as_slice()), (6, &[3, 3][..]));
        assert_eq!(t.loo, Some(Loo { correct: 6, counted: 6 }));
        assert!(t.gradient < 1e-7, "{}", t.gradient);
        assert!((head.bias.iter().sum::<f32>()).abs() < 1e-6);
        // Weights and biases are f32: they survive the JSON exactly.
        let again = Head::parse(head.to_json().as_bytes(), "head.json").unwrap();
        assert_eq!((&again.model, &again.classes, &again.weights, &again.bias), (&head.model, &head.classes, &head.weights, &head.bias));
        let top = head.classify(&[0.0, 1.5, 0.0, 1.5, 0.0, 1.5]);
        assert_eq!(top[0].label, "b");
        assert!(top[0].prob > 0.5 && (top[0].prob + top[1].prob - 1.0).abs() < 1e-6);
    }

    #[test]
    fn mirror_views_count_as_one_example() {
        let mut two = TrainingSet::new(6);
        for i in 0..6 {
            let p = point(i % 2, i);
            let mirror: Vec<f32> = p.iter().rev().copied().collect();
            two.push(i % 2, &[&p, &mirror]).unwrap();
        }
        assert_eq!((two.examples(), two.views()), (6, 12));
        let head = train(&labels(&["a", "b"]), &two, &Options { flips: true, loo: true, ..Options::default() }, &model()).unwrap();
        let t = head.training.unwrap();
        assert_eq!((t.l2, t.flips, t.examples.as_slice(), t.loo.unwrap().counted), (1.0 / 12.0, true, &[3, 3][..], 6));
    }

    #[test]
    fn the_reduced_and_the_plain_problem_have_the_same_optimum() {
        // 6 rows in 6 dimensions are solved plainly (2n > d), in 12 dimensions reduced.
        let s = set(&[0, 1]);
        let plain = fit(&s.rows, 6, &s.class, 2, 0.05);
        let padded: Vec<f32> = s.rows.chunks(6).flat_map(|r| r.iter().copied().chain([0.0; 6])).collect();
        let reduced = fit(&padded, 12, &s.class, 2, 0.05);
        for c in 0..2 {
            for j in 0..6 {
                assert!((plain.weights[c * 6 + j] - reduced.weights[c * 12 + j]).abs() < 1e-7);
                assert!(reduced.weights[c * 12 + 6 + j].abs() < 1e-12);
            }
            assert!((plain.bias[c] - reduced.bias[c]).abs() < 1e-7);
        }
    }

    #[test]
    fn labels_empty_duplicated_or_odd_are_refused() {
        for (names, want) in [
            (vec!["cat", ""], "class 2 has an empty label"),
            (vec!["cat", "  "], "class 2 has an empty label"),
            (vec!["cat", "Cat"], "the label \"Cat\" is given twice (as \"cat\")"),
            (vec!["cat", "cat"], "the label \"cat\" is given twice: each class"),
            (vec!["cat", " dog"], "has spaces at its ends"),
            (vec!["cat", "d\nog"], "control character"),
        ] {
            let err = train(&labels(&names), &set(&[0, 1]), &Options::default(), &model()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadInput);
            assert!(err.message.contains(want), "{names:?}: {}", err.message);
        }
    }

    #[test]
    fn too_few_classes_or_examples_and_bad_sets_are_refused() {
        let one = train(&labels(&["cat"]), &set(&[0]), &Options::default(), &model()).unwrap_err();
        assert_eq!(one.message, "a head needs at least two classes to tell apart (got 1: \"cat\")");
        let empty = train(&labels(&["a", "b"]), &set(&[0]), &Options::default(), &model()).unwrap_err();
        assert_eq!(empty.message, "the class \"b\" has no examples: add at least one photo to it");
        let err = TrainingSet::new(6).push(0, &[&[1.0; 5]]).unwrap_err();
        assert_eq!(err.message, "example 1: 5 features, expected 6");
        let err = train(&labels(&["a", "b"]), &set(&[0, 1]), &Options { l2: Some(0.0), ..Options::default() }, &model()).unwrap_err();
        assert!(err.message.starts_with("l2 0: expected a number from"), "{}", err.message);
        let mut nan = set(&[0, 1]);
        nan.push(1, &[&[f32::NAN; 6]]).unwrap();
        let err = train(&labels(&["a", "b"]), &nan, &Options::default(), &model()).unwrap_err();
        assert_eq!(err.message, "example 7 of \"b\": its features are not all finite numbers");
        assert!(TrainingSet::from_flat(2, vec![0.0; 6], vec![0, 1, 1], vec![0, 1, 1]).is_ok());
        let err = TrainingSet::from_flat(2, vec![0.0; 6], vec![0, 1, 1], vec![0, 2, 2]).unwrap_err();
        assert!(err.message.starts_with("example number 2 where 1"), "{}", err.message);
        let err = TrainingSet::from_flat(2, vec![0.0; 5], vec![0, 1, 1], vec![0, 1, 2]).unwrap_err();
        assert_eq!(err.message, "5 feature values for 3 views of 2 features (3 example numbers)");
    }
}
