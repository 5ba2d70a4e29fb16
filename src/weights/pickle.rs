//! A restricted pickle reader for weight files: PaddlePaddle's `.pdparams`
//! (a dict of numpy arrays) and the `data.pkl` inside torch's zip checkpoints.
//!
//! A pickle is a program for a stack machine that may import and call anything.
//! This reader interprets the data opcodes only, and knows a handful of globals
//! by name (numpy's array rebuild, torch's tensor rebuild and storage types,
//! `collections.OrderedDict`, `_codecs.encode` for protocol-2 bytes); any other
//! global is refused, naming it, before anything could be called. Nothing is
//! ever executed: "calling" an allowed global just records a typed value.
//!
//! Objects live in an arena and refer to each other by index, so shared or
//! cyclic references are cheap and dropping never recurses; every value comes
//! from at least one opcode byte, so memory stays proportional to the file.

use crate::model::{Tensor, TensorMap};
use crate::{bail, Error, Result};
use std::borrow::Cow;
use std::collections::HashMap;

type Id = usize;

/// The globals this reader knows. Anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    Reconstruct,
    Ndarray,
    NpDtype,
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    CodecsEncode,
    EmptyBytes,
    Storage(Elem),
}

/// Element types we can read as f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Elem {
    F16,
    BF16,
    F32,
    F64,
}

impl Elem {
    /// numpy's float type codes (a dtype's `kind` and size without its byte order).
    pub fn numpy(code: &str) -> Option<Elem> {
        match code {
            "f2" => Some(Elem::F16),
            "f4" => Some(Elem::F32),
            "f8" => Some(Elem::F64),
            _ => None,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Elem::F16 | Elem::BF16 => 2,
            Elem::F32 => 4,
            Elem::F64 => 8,
        }
    }

    /// Decodes `bytes` (whole elements, little- or big-endian) to f32.
    pub fn decode(self, bytes: &[u8], big_endian: bool) -> Vec<f32> {
        let n = self.size();
        bytes
            .chunks_exact(n)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(c);
                if big_endian {
                    b[..n].reverse();
                }
                match self {
                    Elem::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                    Elem::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                    Elem::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    Elem::F64 => f64::from_le_bytes(b) as f32,
                }
            })
            .collect()
    }
}

fn global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::Reconstruct,
        ("numpy", "ndarray") => Global::Ndarray,
        ("numpy", "dtype") => Global::NpDtype,
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("__builtin__" | "builtins", "bytes") => Global::EmptyBytes,
        ("torch", "FloatStorage") => Global::Storage(Elem::F32),
        ("torch", "HalfStorage") => Global::Storage(Elem::F16),
        ("torch", "BFloat16Storage") => Global::Storage(Elem::BF16),
        ("torch", "DoubleStorage") => Global::Storage(Elem::F64),
        _ => return None,
    })
}

#[derive(Debug)]
enum Obj<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float,
    Str(String),
    Bytes(Cow<'a, [u8]>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    /// A numpy array under reconstruction (`_reconstruct(...)` then BUILD).
    Array { state: Option<Id> },
    /// `numpy.dtype(kind, ...)`, byte order set by BUILD.
    Dtype { kind: String, order: Option<String> },
    /// A torch storage named by a persistent id.
    Storage { elem: Elem, key: String, numel: u64 },
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
    TorchTensor { storage: Id, offset: u64, size: Vec<u64>, stride: Vec<u64> },
}

/// A loaded pickle: the arena and its root value.
pub struct Pickle<'a> {
    objs: Vec<Obj<'a>>,
    root: Id,
    source: String,
}

/// Runs the restricted interpreter over `bytes`. `torch` allows persistent ids
/// (torch's storages); a plain pickle must not have any.
pub fn load<'a>(bytes: &'a [u8], source: &str, torch: bool) -> Result<Pickle<'a>> {
    let mut vm = Vm { bytes, pos: 0, source, objs: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    let root = vm.run(torch)?;
    Ok(Pickle { objs: vm.objs, root, source: source.to_string() })
}

struct Vm<'a, 's> {
    bytes: &'a [u8],
    pos: usize,
    source: &'s str,
    objs: Vec<Obj<'a>>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl<'a, 's> Vm<'a, 's> {
    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::from(format!("{}: pickle: {what} (at byte {})", self.source, self.pos))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let end = (self.pos as u64).checked_add(n).filter(|&e| e <= self.bytes.len() as u64);
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end as usize];
                self.pos = end as usize;
                Ok(s)
            }
            None => Err(self.err(format!("truncated: needs {n} more bytes, {} left", self.bytes.len() - self.pos))),
        }
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        let b = self.take(n as u64)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("truncated: unterminated line"));
        };
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| self.err("line is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }

    fn push(&mut self, o: Obj<'a>) {
        self.objs.push(o);
        self.stack.push(self.objs.len() - 1);
    }

    fn pop(&mut self) -> Result<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("malformed: stack underflow"));
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn top(&self) -> Result<Id> {
        self.stack.last().copied().ok_or_else(|| self.err("malformed: empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.err("malformed: no mark"));
        };
        Ok(self.stack.split_off(mark))
    }

    fn string(&self, id: Id) -> Option<&str> {
        text(&self.objs[id])
    }

    fn resolve_global(&self, module: &str, name: &str) -> Result<Global> {
        global(module, name).ok_or_else(|| {
            self.err(format!(
                "refusing global {module}.{name}: only numpy arrays, torch tensors and OrderedDict are allowed \
                 (a pickle can run arbitrary code; this reader never does)"
            ))
        })
    }

    fn set_memo(&mut self, key: u64) -> Result<()> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn get_memo(&mut self, key: u64) -> Result<()> {
        let id = *self.memo.get(&key).ok_or_else(|| self.err(format!("malformed: memo key {key} unset")))?;
        self.stack.push(id);
        Ok(())
    }

    fn long(&mut self, n: u64) -> Result<()> {
        if n > 8 {
            return Err(self.err(format!("integer of {n} bytes is too large")));
        }
        let b = self.take(n)?;
        let mut v = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xFFu8; 8] } else { [0u8; 8] };
        v[..b.len()].copy_from_slice(b);
        self.push(Obj::Int(i64::from_le_bytes(v)));
        Ok(())
    }

    fn text(&mut self, n: u64) -> Result<()> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))?;
        self.push(Obj::Str(s.to_string()));
        Ok(())
    }

    fn bytes_op(&mut self, n: u64) -> Result<()> {
        let b = self.take(n)?;
        self.push(Obj::Bytes(Cow::Borrowed(b)));
        Ok(())
    }

    /// `callable(*args)` for the allowed globals: builds a typed value, runs nothing.
    fn call(&mut self, f: Id, args: Id) -> Result<Obj<'a>> {
        let Obj::Global(g) = self.objs[f] else {
            return Err(self.err("malformed: REDUCE on something that is not an allowed global"));
        };
        let items = match &self.objs[args] {
            Obj::Tuple(items) => items.clone(),
            _ => return Err(self.err("malformed: REDUCE arguments are not a tuple")),
        };
        let bad = |vm: &Self, what: &str| vm.err(format!("unexpected arguments to {what}"));
        Ok(match g {
            Global::Reconstruct => {
                if items.first().map(|&i| &self.objs[i]).is_some_and(|o| matches!(o, Obj::Global(Global::Ndarray))) {
                    Obj::Array { state: None }
                } else {
                    return Err(bad(self, "numpy _reconstruct"));
                }
            }
            Global::NpDtype => match items.first().and_then(|&i| self.string(i)) {
                Some(kind) if kind.len() <= 16 => Obj::Dtype { kind: kind.to_string(), order: None },
                _ => return Err(bad(self, "numpy.dtype")),
            },
            Global::OrderedDict => {
                if !items.is_empty() {
                    return Err(bad(self, "OrderedDict"));
                }
                Obj::Dict(Vec::new())
            }
            Global::CodecsEncode => {
                // Protocol 2 writes bytes as _codecs.encode(text, "latin1").
                let (Some(text), Some(enc)) = (items.first().and_then(|&i| self.string(i)), items.get(1).and_then(|&i| self.string(i)))
                else {
                    return Err(bad(self, "_codecs.encode"));
                };
                if enc != "latin1" && enc != "latin-1" {
                    return Err(self.err(format!("_codecs.encode with encoding {enc:?} is not supported")));
                }
                let out: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                Obj::Bytes(Cow::Owned(out.ok_or_else(|| bad(self, "_codecs.encode"))?))
            }
            Global::EmptyBytes => {
                // Protocol 2 writes an empty bytes object (an empty array's data) as bytes().
                if !items.is_empty() {
                    return Err(bad(self, "bytes"));
                }
                Obj::Bytes(Cow::Borrowed(&[]))
            }
            Global::RebuildTensor => {
                if items.len() < 4 {
                    return Err(bad(self, "_rebuild_tensor_v2"));
                }
                let storage = items[0];
                if !matches!(self.objs[storage], Obj::Storage { .. }) {
                    return Err(self.err("_rebuild_tensor_v2 without a storage"));
                }
                let (Some(offset), Some(size), Some(stride)) = (natural(&self.objs, items[1]), naturals(&self.objs, items[2]), naturals(&self.objs, items[3])) else {
                    return Err(bad(self, "_rebuild_tensor_v2"));
                };
                if size.len() != stride.len() || size.len() > 8 {
                    return Err(bad(self, "_rebuild_tensor_v2"));
                }
                Obj::TorchTensor { storage, offset, size, stride }
            }
            Global::RebuildParameter => match items.first().map(|&t| &self.objs[t]) {
                Some(Obj::TorchTensor { storage, offset, size, stride }) => {
                    Obj::TorchTensor { storage: *storage, offset: *offset, size: size.clone(), stride: stride.clone() }
                }
                _ => return Err(bad(self, "_rebuild_parameter")),
            },
            Global::Ndarray | Global::Storage(_) => return Err(self.err("refusing to call numpy.ndarray or a torch storage type")),
        })
    }

    fn run(&mut self, torch: bool) -> Result<Id> {
        loop {
            let Some(&op) = self.bytes.get(self.pos) else {
                return Err(self.err("truncated: no STOP opcode"));
            };
            self.pos += 1;
            match op {
                0x80 => {
                    let v = self.uint(1)?;
                    if v > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {v}")));
                    }
                }
                0x95 => {
                    self.uint(8)?; // FRAME: a length hint; opcodes are read the same either way.
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(Obj::Int(v as i64));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(Obj::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(Obj::Int(v as i64));
                }
                0x8a => {
                    let n = self.uint(1)?;
                    self.long(n)?;
                }
                0x8b => {
                    let n = self.uint(4)?;
                    self.long(n)?;
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Obj::Float);
                }
                b'X' => {
                    let n = self.uint(4)?;
                    self.text(n)?;
                }
                0x8c => {
                    let n = self.uint(1)?;
                    self.text(n)?;
                }
                0x8d => {
                    let n = self.uint(8)?;
                    self.text(n)?;
                }
                b'T' => {
                    let n = self.uint(4)?;
                    self.bytes_op(n)?;
                }
                b'U' => {
                    let n = self.uint(1)?;
                    self.bytes_op(n)?;
                }
                b'B' => {
                    let n = self.uint(4)?;
                    self.bytes_op(n)?;
                }
                b'C' => {
                    let n = self.uint(1)?;
                    self.bytes_op(n)?;
                }
                0x8e | 0x96 => {
                    let n = self.uint(8)?;
                    self.bytes_op(n)?;
                }
                b')' => self.push(Obj::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(self.err("malformed: stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Obj::Tuple(items));
                }
                b']' => self.push(Obj::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    match &mut self.objs[l] {
                        Obj::List(items) => items.push(v),
                        _ => return Err(self.err("malformed: APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let vs = self.pop_mark()?;
                    let l = self.top()?;
                    match &mut self.objs[l] {
                        Obj::List(items) => items.extend(vs),
                        _ => return Err(self.err("malformed: APPENDS to a non-list")),
                    }
                }
                b'}' => self.push(Obj::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("malformed: odd number of dict items"));
                    }
                    let pairs = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    self.push(Obj::Dict(pairs));
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    match &mut self.objs[d] {
                        Obj::Dict(pairs) => pairs.push((k, v)),
                        _ => return Err(self.err("malformed: SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("malformed: odd number of dict items"));
                    }
                    let d = self.top()?;
                    match &mut self.objs[d] {
                        Obj::Dict(pairs) => pairs.extend(items.chunks_exact(2).map(|c| (c[0], c[1]))),
                        _ => return Err(self.err("malformed: SETITEMS on a non-dict")),
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.resolve_global(module, name)?;
                    self.push(Obj::Global(g));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (self.string(module), self.string(name)) else {
                        return Err(self.err("malformed: STACK_GLOBAL needs two strings"));
                    };
                    let g = self.resolve_global(module, name)?;
                    self.push(Obj::Global(g));
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let o = self.call(f, args)?;
                    self.push(o);
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    let dtype_state = match (&self.objs[target], &self.objs[state]) {
                        (Obj::Array { .. }, _) => None,
                        (Obj::Dtype { .. }, Obj::Tuple(items)) => {
                            Some(items.get(1).and_then(|&i| self.string(i)).map(str::to_string))
                        }
                        (Obj::Dict(_), Obj::Dict(_) | Obj::None) => None, // OrderedDict attributes (torch's _metadata)
                        _ => return Err(self.err("malformed: BUILD on an object this reader does not know")),
                    };
                    match &mut self.objs[target] {
                        Obj::Array { state: s } => *s = Some(state),
                        Obj::Dtype { order, .. } => *order = dtype_state.flatten(),
                        _ => {}
                    }
                }
                b'Q' => {
                    if !torch {
                        return Err(self.err("persistent ids are only allowed in torch checkpoints"));
                    }
                    let pid = self.pop()?;
                    let o = self.storage(pid)?;
                    self.push(o);
                }
                b'q' => {
                    let k = self.uint(1)?;
                    self.set_memo(k)?;
                }
                b'r' => {
                    let k = self.uint(4)?;
                    self.set_memo(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.set_memo(k)?;
                }
                b'h' => {
                    let k = self.uint(1)?;
                    self.get_memo(k)?;
                }
                b'j' => {
                    let k = self.uint(4)?;
                    self.get_memo(k)?;
                }
                b'i' | b'o' | 0x81 | 0x92 => return Err(self.err(format!("refusing object-creating opcode 0x{op:02x}"))),
                _ => return Err(self.err(format!("unsupported opcode 0x{op:02x}"))),
            }
        }
    }

    /// torch's persistent id: ('storage', StorageType, key, location, numel).
    fn storage(&self, pid: Id) -> Result<Obj<'a>> {
        let Obj::Tuple(items) = &self.objs[pid] else {
            return Err(self.err("persistent id is not a tuple"));
        };
        let ok = items.len() == 5 && self.string(items[0]) == Some("storage");
        let elem = match items.get(1).map(|&i| &self.objs[i]) {
            Some(Obj::Global(Global::Storage(e))) if ok => *e,
            _ => return Err(self.err("persistent id is not a torch storage of a floating-point type")),
        };
        let (Some(key), Some(numel)) = (self.string(items[2]), natural(&self.objs, items[4])) else {
            return Err(self.err("malformed torch storage id"));
        };
        if key.len() > 64 {
            return Err(self.err("malformed torch storage key"));
        }
        Ok(Obj::Storage { elem, key: key.to_string(), numel })
    }
}

/// A non-negative integer: a size, stride, offset or element count.
fn natural(objs: &[Obj], id: Id) -> Option<u64> {
    match objs[id] {
        Obj::Int(v) => u64::try_from(v).ok(),
        _ => None,
    }
}

/// A tuple or list of them: a shape or strides.
fn naturals(objs: &[Obj], id: Id) -> Option<Vec<u64>> {
    match &objs[id] {
        Obj::Tuple(items) | Obj::List(items) => items.iter().map(|&i| natural(objs, i)).collect(),
        _ => None,
    }
}

/// A string: Python 3's, or Python 2's (BINSTRING, SHORT_BINSTRING: bytes here, which
/// pickle.loads(encoding="latin1") reads as text) where it is ASCII, as names and dtypes are.
fn text<'o>(obj: &'o Obj) -> Option<&'o str> {
    match obj {
        Obj::Str(s) => Some(s),
        Obj::Bytes(b) if b.is_ascii() => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// Whether strides are those of a C-order (row-major) array of this shape, so that its
/// elements lie in one run; a dimension of size 1 may have any stride.
fn row_major(size: &[u64], stride: &[u64]) -> bool {
    let mut expect = 1u64;
    let mut ok = true;
    for (&n, &s) in size.iter().zip(stride).rev() {
        ok &= n <= 1 || s == expect;
        expect = expect.saturating_mul(n.max(1));
    }
    ok
}

/// A tensor's shape as usizes, refusing overflow.
fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

impl<'a> Pickle<'a> {
    fn entries(&self) -> Result<Vec<(String, Id)>> {
        let Obj::Dict(pairs) = &self.objs[self.root] else {
            bail!("{}: the pickle does not hold a dict of tensors", self.source);
        };
        pairs
            .iter()
            .map(|&(k, v)| match text(&self.objs[k]) {
                Some(s) => Ok((s.to_string(), v)),
                None => bail!("{}: a key of the pickled dict is not a string", self.source),
            })
            .collect()
    }

    /// A dict of numpy arrays (PaddlePaddle's `.pdparams`). Non-array entries
    /// named in `skip` are ignored. At most `budget` elements are decoded in all (arrays may
    /// share a memoized byte string).
    pub fn numpy_dict(&self, skip: &[&str], mut budget: u64) -> Result<TensorMap> {
        let src = &self.source;
        let mut out = TensorMap::new();
        // Bounded output: a memo can share one byte string between many arrays,
        // so limit the total elements decoded to what the file could hold.
        for (name, id) in self.entries()? {
            if skip.contains(&name.as_str()) {
                continue;
            }
            let Obj::Array { state: Some(state) } = self.objs[id] else {
                bail!("{src}: entry {name} is not a numpy array");
            };
            let Obj::Tuple(st) = &self.objs[state] else {
                bail!("{src}: entry {name}: malformed numpy array state");
            };
            // (version, shape, dtype, is_fortran, data), version optional.
            let st = if st.len() == 5 { &st[1..] } else { &st[..] };
            if st.len() != 4 {
                bail!("{src}: entry {name}: malformed numpy array state");
            }
            let Some(shape) = naturals(&self.objs, st[0]) else {
                bail!("{src}: entry {name}: malformed numpy shape");
            };
            let Obj::Dtype { kind, order } = &self.objs[st[1]] else {
                bail!("{src}: entry {name}: malformed numpy dtype");
            };
            let elem = match Elem::numpy(kind) {
                Some(elem) => elem,
                None if kind == "O" => bail!("{src}: entry {name} is an object array; refusing (it would need arbitrary pickled objects)"),
                None => bail!("{src}: entry {name} has dtype {kind:?}; expected a float type (f2, f4, f8)"),
            };
            let big = order.as_deref() == Some(">");
            if matches!(self.objs[st[2]], Obj::Bool(true)) {
                bail!("{src}: entry {name}: Fortran-order arrays are not supported");
            }
            let Obj::Bytes(data) = &self.objs[st[3]] else {
                bail!("{src}: entry {name}: array data is not raw bytes");
            };
            let count = element_count(&shape);
            let need = count.and_then(|c| c.checked_mul(elem.size() as u64));
            if need != Some(data.len() as u64) {
                bail!("{src}: entry {name}: shape {shape:?} of {kind} needs {} bytes, the file holds {}", fmt_need(need), data.len());
            }
            let count = count.expect("checked");
            if count > budget {
                bail!("{src}: entry {name}: the arrays share more data than the file holds");
            }
            budget -= count;
            let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            if out.insert(name.clone(), Tensor::new(shape, elem.decode(data, big))).is_some() {
                bail!("{src}: tensor {name} appears twice");
            }
        }
        Ok(out)
    }


    /// A dict of torch tensors whose storages `storage(key)` returns as bytes.
    /// At most `budget` elements are decoded in all (tensors may share storages).
    pub fn torch_dict<'b>(
        &self,
        mut storage: impl FnMut(&str) -> Result<Cow<'b, [u8]>>,
        big_endian: bool,
        mut budget: u64,
    ) -> Result<TensorMap> {
        let src = &self.source;
        let mut out = TensorMap::new();
        let mut cache: HashMap<String, Cow<'b, [u8]>> = HashMap::new();
        for (name, id) in self.entries()? {
            let Obj::TorchTensor { storage: sid, offset, size, stride } = &self.objs[id] else {
                bail!("{src}: entry {name} is not a tensor");
            };
            let Obj::Storage { elem, key, numel } = &self.objs[*sid] else { unreachable!("checked when built") };
            if !cache.contains_key(key) {
                let bytes = storage(key)?;
                cache.insert(key.clone(), bytes);
            }
            let bytes = &cache[key];
            let need = numel.checked_mul(elem.size() as u64);
            if need.is_none_or(|n| n > bytes.len() as u64) {
                bail!("{src}: storage {key} of {name} claims {numel} elements but holds {} bytes", bytes.len());
            }
            // An expanded tensor (stride 0) has more elements than its storage: what bounds the
            // output is the file's size (the budget), and the last element must lie inside it.
            let Some(count) = element_count(size) else {
                bail!("{src}: tensor {name}: shape {size:?} has more than 2^64 elements");
            };
            if count > budget {
                bail!("{src}: tensor {name}: the tensors share more data than the file holds");
            }
            budget -= count;
            // Highest element touched: offset + sum((size-1)*stride).
            let last = if count == 0 {
                Some(*offset)
            } else {
                size.iter().zip(stride).try_fold(*offset, |a, (&n, &s)| (n - 1).checked_mul(s).and_then(|d| a.checked_add(d)))
            };
            if last.is_none_or(|l| count > 0 && l >= *numel) {
                bail!("{src}: tensor {name}: offset {offset}, shape {size:?}, stride {stride:?} reach past its storage ({numel} elements)");
            }
            let es = elem.size();
            let data: Vec<f32> = if row_major(size, stride) {
                let (start, end) = (*offset as usize * es, (*offset + count) as usize * es);
                elem.decode(&bytes[start..end], big_endian)
            } else {
                let mut data = Vec::with_capacity(count as usize);
                let mut index = vec![0u64; size.len()];
                for _ in 0..count {
                    let at = (offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<u64>()) as usize;
                    data.extend(elem.decode(&bytes[at * es..(at + 1) * es], big_endian));
                    for d in (0..size.len()).rev() {
                        index[d] += 1;
                        if index[d] < size[d] {
                            break;
                        }
                        index[d] = 0;
                    }
                }
                data
            };
            let shape = size.iter().map(|&d| d as usize).collect();
            if out.insert(name.clone(), Tensor::new(shape, data)).is_some() {
                bail!("{src}: tensor {name} appears twice");
            }
        }
        Ok(out)
    }
}

fn fmt_need(need: Option<u64>) -> String {
    need.map(|n| n.to_string()).unwrap_or_else(|| "more than 2^64".into())
}

#[cfg(test)]
mod tests {
    use super::load;

    #[test]
    fn deep_nesting_and_cycles_neither_recurse_nor_leak_into_a_crash() {
        // 200k nested 1-tuples, then a list that contains itself.
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 200_000));
        p.extend(b"0]q\x00h\x00a.");
        let pickle = load(&p, "deep.pkl", false).unwrap();
        assert!(pickle.numpy_dict(&[], p.len() as u64).unwrap_err().message.contains("does not hold a dict"));
    }

    #[test]
    fn a_memo_shared_byte_string_cannot_multiply_the_output() {
        // {"a": arr, "b": arr, ...}: each entry rebuilds an array over the same memoized bytes.
        let mut p = b"\x80\x02}(".to_vec();
        let array = |p: &mut Vec<u8>, first: bool| {
            p.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01M\x00\x04\x85");
            p.extend(b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89");
            if first {
                p.extend(b"B\x00\x10\x00\x00");
                p.extend([0u8; 4096]);
                p.extend(b"q\x01");
            } else {
                p.extend(b"h\x01");
            }
            p.extend(b"tb");
        };
        for i in 0..200u32 {
            p.extend(b"X\x04\x00\x00\x00");
            p.extend(format!("{i:04}").as_bytes());
            array(&mut p, i == 0);
        }
        p.extend(b"u.");
        // 200 arrays of 1024 f4 over one memoized 4 KiB string: 204800 elements from a ~40 KB file.
        let err = load(&p, "shared.pkl", false).unwrap().numpy_dict(&[], p.len() as u64).err().unwrap();
        assert!(err.message.contains("share more data than the file holds"), "{err}");
    }

    #[test]
    fn persistent_ids_and_object_opcodes_are_refused() {
        let err = load(b"\x80\x02X\x01\x00\x00\x00aQ.", "p.pkl", false).err().unwrap();
        assert!(err.message.contains("persistent ids are only allowed in torch checkpoints"), "{err}");
        let err = load(b"\x80\x02cbuiltins\neval\n.", "p.pkl", false).err().unwrap();
        assert!(err.message.contains("refusing global builtins.eval"), "{err}");
        let err = load(b"\x80\x02))\x81.", "p.pkl", false).err().unwrap();
        assert!(err.message.contains("refusing object-creating opcode 0x81"), "{err}");
        let err = load(b"\x80\x02X\xff\xff\xff\x7f", "p.pkl", false).err().unwrap();
        assert!(err.message.contains("truncated"), "{err}");
    }

    /// torch's persistent id: ('storage', FloatStorage, '0', 'cpu', 4).
    fn storage(tag: &str) -> Vec<u8> {
        [b"(X".as_slice(), &(tag.len() as u32).to_le_bytes(), tag.as_bytes(), b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"].concat()
    }

    /// _rebuild_tensor_v2(storage, offset, size, stride), a whole pickle.
    fn tensor_at(offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
        [b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(".as_slice(), &storage("storage"), &[b'K', offset, b'('], size, b"t(", stride, b"ttR."].concat()
    }

    fn tensor(size: &[u8], stride: &[u8]) -> Vec<u8> {
        tensor_at(0, size, stride)
    }

    /// {"w": body}, a whole pickle, from a whole pickle's body.
    fn dict_of(body: &[u8]) -> Vec<u8> {
        [b"\x80\x02}X\x01\x00\x00\x00w".as_slice(), &body[2..body.len() - 1], b"s."].concat()
    }

    #[test]
    fn decoding_budgets_and_storage_sizes_hold_at_their_limits() {
        use std::borrow::Cow;
        // A 2x2 float tensor over storage "0" of 4 elements: 4 elements decoded.
        let torch = dict_of(&tensor(b"K\x02K\x02", b"K\x02K\x01"));
        let torch = load(&torch, "t.pkl", true).unwrap();
        let read = |bytes: usize, budget: u64| torch.torch_dict(|_| Ok(Cow::Owned(vec![0u8; bytes])), false, budget).map_err(|e| e.message);
        assert_eq!(read(16, 4).unwrap()["w"].shape, [2, 2]);
        assert_eq!(read(16, 3).unwrap_err(), "t.pkl: tensor w: the tensors share more data than the file holds");
        assert_eq!(read(12, 4).unwrap_err(), "t.pkl: storage 0 of w claims 4 elements but holds 12 bytes");
        assert_eq!(read(20, 4).unwrap()["w"].shape, [2, 2], "a storage may hold more than it claims");
        // Elements 1..=4 of a 4-element storage (however many bytes it holds).
        let past = dict_of(&tensor_at(1, b"K\x02K\x02", b"K\x02K\x01"));
        let past = load(&past, "t.pkl", true).unwrap();
        assert_eq!(
            past.torch_dict(|_| Ok(Cow::Owned(vec![0u8; 20])), false, 4).unwrap_err().message,
            "t.pkl: tensor w: offset 1, shape [2, 2], stride [2, 1] reach past its storage (4 elements)"
        );
        // numpy.core.multiarray._reconstruct of a float32 array of 2 elements.
        let mut numpy = b"\x80\x02}X\x01\x00\x00\x00acnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01K\x02\x85".to_vec();
        numpy.extend(b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89C\x08");
        numpy.extend([0, 0, 128, 63, 0, 0, 0, 64]);
        numpy.extend(b"tbs.");
        let numpy = load(&numpy, "n.pkl", false).unwrap();
        assert_eq!(numpy.numpy_dict(&[], 2).unwrap()["a"].data, [1.0, 2.0]);
        assert_eq!(numpy.numpy_dict(&[], 1).unwrap_err().message, "n.pkl: entry a: the arrays share more data than the file holds");
    }

    #[test]
    fn row_major_is_c_order_whatever_the_strides_of_size_1() {
        use super::row_major;
        assert!(row_major(&[2, 3], &[3, 1]) && row_major(&[], &[]) && row_major(&[1, 3], &[99, 1]) && row_major(&[3, 1], &[1, 7]));
        assert!(!row_major(&[2, 3], &[1, 2]) && !row_major(&[2, 3], &[4, 1]) && !row_major(&[2, 2], &[2, 0]));
    }

    /// Opcodes that no fixture writer reaches: BINFLOAT, BINSTRING (a Python 2 str past 255
    /// bytes), BINBYTES8 and BYTEARRAY8 (protocol 5); a Python 2 str key that is not ASCII.
    #[test]
    fn rarer_opcodes_read_and_python_2_keys_must_be_ascii() {
        for p in [b"\x80\x02G\x3f\xf0\x00\x00\x00\x00\x00\x00.".as_slice(), b"\x80\x05\x8e\x01\x00\x00\x00\x00\x00\x00\x00x.", b"\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00x."] {
            assert!(load(p, "p.pkl", false).is_ok(), "{p:?}");
            assert!(load(&p[..p.len() - 2], "p.pkl", false).err().unwrap().message.contains("truncated"), "{p:?}");
        }
        let keys = |key: &[u8], skip: &str| {
            let p = [b"\x80\x02}".as_slice(), key, b"Ns."].concat();
            load(&p, "p.pkl", false).unwrap().numpy_dict(&[skip], 0).map(|d| d.len()).map_err(|e| e.message)
        };
        assert_eq!(keys(b"T\x01\x00\x00\x00a", "a"), Ok(0));
        assert_eq!(keys(b"T\x01\x00\x00\x00a", "b").unwrap_err(), "p.pkl: entry a is not a numpy array");
        assert_eq!(keys(b"U\x02\xc3\xa9", "\u{e9}").unwrap_err(), "p.pkl: a key of the pickled dict is not a string");
    }

    #[test]
    fn malformed_structures_are_refused_by_what_is_wrong() {
        let refused = |p: &[u8], torch: bool, why: &str| {
            let err = load(p, "p.pkl", torch).err().unwrap().message;
            assert!(err.starts_with("p.pkl") && err.contains(why), "{err}");
        };
        refused(b"\x80\x06N.", false, "unsupported pickle protocol 6");
        assert!(load(b"\x80\x05N.", "p.pkl", false).is_ok());
        refused(b"\x80\x02(K\x01d.", false, "odd number of dict items");
        assert!(load(&[b"\x80\x02".as_slice(), &storage("storage"), b"."].concat(), "p.pkl", true).is_ok());
        refused(&[b"\x80\x02".as_slice(), &storage("blob"), b"."].concat(), true, "is not a torch storage");
        assert!(load(&tensor(b"K\x02K\x02", b"K\x02K\x01"), "p.pkl", true).is_ok());
        refused(&tensor(b"K\x02K\x02", b"K\x01"), true, "unexpected arguments to _rebuild_tensor_v2");
        refused(&tensor(&b"K\x01".repeat(9), &b"K\x01".repeat(9)), true, "unexpected arguments to _rebuild_tensor_v2");
        // _rebuild_parameter(tensor, requires_grad, hooks) takes a tensor and nothing else.
        let parameter = |data: &[u8]| [b"\x80\x02ctorch._utils\n_rebuild_parameter\n(".as_slice(), data, b"\x88}tR."].concat();
        let tensor = &tensor(b"K\x02", b"K\x01");
        assert!(load(&parameter(&tensor[2..tensor.len() - 1]), "p.pkl", true).is_ok());
        refused(&parameter(b"K\x01"), true, "unexpected arguments to _rebuild_parameter");
        refused(&parameter(b""), true, "unexpected arguments to _rebuild_parameter");
    }

    /// {"a": float32 array [1, 2]} (numpy's protocol 2 form), its data written by `data`'s opcodes.
    fn numpy_with_data(data: &[u8]) -> Vec<u8> {
        let mut p = b"\x80\x02}X\x01\x00\x00\x00acnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01K\x02\x85".to_vec();
        p.extend(b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89");
        p.extend(data);
        p.extend(b"tbs.");
        p
    }

    #[test]
    fn protocol_2_bytes_are_latin_1_text_and_no_other_encoding() {
        // [0, 0, 128, 63, 0, 0, 0, 64] as the text "\0\0\u{80}?\0\0\0@", UTF-8 in the pickle.
        let encoded = |encoding: &str| {
            let mut data = b"c_codecs\nencode\n(X\x09\x00\x00\x00\x00\x00\xc2\x80?\x00\x00\x00@X".to_vec();
            data.extend((encoding.len() as u32).to_le_bytes());
            data.extend(encoding.as_bytes());
            data.extend(b"tR");
            let p = numpy_with_data(&data);
            load(&p, "n.pkl", false).and_then(|n| n.numpy_dict(&[], 2)).map(|d| d["a"].data.clone()).map_err(|e| e.message)
        };
        assert_eq!(encoded("latin1"), Ok(vec![1.0, 2.0]));
        assert_eq!(encoded("latin-1"), Ok(vec![1.0, 2.0]));
        assert!(encoded("utf-8").unwrap_err().contains("_codecs.encode with encoding \"utf-8\" is not supported"));
    }

    #[test]
    fn numpy_arrays_of_objects_or_integers_are_refused_by_dtype() {
        let with_dtype = |code: &[u8]| {
            let p = numpy_with_data(&[b"C\x08".as_slice(), &[0; 8]].concat());
            let at = p.windows(7).position(|w| w == b"X\x02\x00\x00\x00f4").unwrap();
            let p = [&p[..at], &[b'X', code.len() as u8, 0, 0, 0], code, &p[at + 7..]].concat();
            load(&p, "n.pkl", false).unwrap().numpy_dict(&[], 8).err().unwrap().message
        };
        assert_eq!(with_dtype(b"O"), "n.pkl: entry a is an object array; refusing (it would need arbitrary pickled objects)");
        assert_eq!(with_dtype(b"i4"), "n.pkl: entry a has dtype \"i4\"; expected a float type (f2, f4, f8)");
    }

    #[test]
    fn budgets_count_every_tensor_of_the_file() {
        use std::borrow::Cow;
        let tensor = tensor(b"K\x02K\x02", b"K\x02K\x01");
        let body = &tensor[2..tensor.len() - 1];
        let torch = [b"\x80\x02}X\x01\x00\x00\x00w".as_slice(), body, b"sX\x01\x00\x00\x00v", body, b"s."].concat();
        let torch = load(&torch, "t.pkl", true).unwrap();
        let read = |budget: u64| torch.torch_dict(|_| Ok(Cow::Owned(vec![0u8; 16])), false, budget).map(|d| d.len()).map_err(|e| e.message);
        assert_eq!(read(8), Ok(2));
        assert_eq!(read(7).unwrap_err(), "t.pkl: tensor v: the tensors share more data than the file holds");
        let one = numpy_with_data(&[b"C\x08".as_slice(), &[0, 0, 128, 63, 0, 0, 0, 64]].concat());
        let entry = &one[3..one.len() - 1]; // X 'a', the array, SETITEM
        let mut second = entry.to_vec();
        second[5] = b'b';
        let numpy = [b"\x80\x02}".as_slice(), entry, &second, b"."].concat();
        let numpy = load(&numpy, "n.pkl", false).unwrap();
        assert_eq!(numpy.numpy_dict(&[], 4).map(|d| d.len()), Ok(2));
        assert_eq!(numpy.numpy_dict(&[], 3).unwrap_err().message, "n.pkl: entry b: the arrays share more data than the file holds");
    }

    #[test]
    fn marks_dicts_and_keys_at_their_limits() {
        // POP_MARK drops what was pushed since the mark: the dict below it is the root.
        assert_eq!(load(b"\x80\x02}(K\x01K\x021.", "p.pkl", false).unwrap().numpy_dict(&[], 0).map(|d| d.len()), Ok(0));
        // DICT of an even number of items; SETITEMS of an odd one.
        assert_eq!(load(b"\x80\x02(X\x01\x00\x00\x00aNd.", "p.pkl", false).unwrap().numpy_dict(&["a"], 0).map(|d| d.len()), Ok(0));
        assert!(load(b"\x80\x02}(K\x01u.", "p.pkl", false).err().unwrap().message.contains("odd number of dict items"));
        // BINUNICODE8 (protocol 4's long text).
        assert!(load(b"\x80\x04\x8d\x01\x00\x00\x00\x00\x00\x00\x00x.", "p.pkl", false).is_ok());
        assert!(load(b"\x80\x04\x8d\x01\x00\x00\x00\x00\x00\x00\x00", "p.pkl", false).err().unwrap().message.contains("truncated"));
        // A storage key of 64 characters; 65 is not one torch writes.
        let key = |n: usize| {
            let key = "k".repeat(n);
            let p = [b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX".as_slice(), &(n as u32).to_le_bytes(), key.as_bytes(), b"X\x03\x00\x00\x00cpuK\x04tQ."].concat();
            load(&p, "p.pkl", true).map(|_| ()).map_err(|e| e.message)
        };
        assert_eq!(key(64), Ok(()));
        assert!(key(65).unwrap_err().contains("malformed torch storage key"));
        // A dtype code of 16 characters is read (and refused later by name); 17 is not a dtype.
        let dtype = |n: usize| {
            let p = [b"\x80\x02cnumpy\ndtype\n(X".as_slice(), &(n as u32).to_le_bytes(), "f".repeat(n).as_bytes(), b"\x89\x88tR."].concat();
            load(&p, "p.pkl", false).map(|_| ()).map_err(|e| e.message)
        };
        assert_eq!(dtype(16), Ok(()));
        assert!(dtype(17).unwrap_err().contains("numpy.dtype"));
        // Tensors of 8 dimensions (9: malformed_structures_are_refused_by_what_is_wrong).
        assert!(load(&tensor(&b"K\x01".repeat(8), &b"K\x01".repeat(8)), "p.pkl", true).is_ok());
    }
}
