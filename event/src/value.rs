use bytes::Bytes;
use smol_str::SmolStr;
use std::fmt;

/// An immutable UTF-8 string backed by [`Bytes`]: cheap to clone and to slice out of a
/// raw line without copying.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// Wrap bytes known to be UTF-8.
    ///
    /// # Safety
    /// `b` must be valid UTF-8.
    #[inline]
    pub unsafe fn from_utf8_unchecked(b: Bytes) -> ByteStr {
        ByteStr(b)
    }
    /// Wrap bytes, validating UTF-8.
    pub fn from_utf8(b: Bytes) -> Result<ByteStr, Bytes> {
        if simdutf8::basic::from_utf8(&b).is_ok() {
            Ok(ByteStr(b))
        } else {
            Err(b)
        }
    }
    pub fn from_static(s: &'static str) -> ByteStr {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }
    /// A string given to many events (an event name, a template id): kept once for the
    /// life of the process, so a clone copies a pointer instead of updating a reference
    /// count that every thread the events pass through would update too. Equal strings
    /// share one copy (a config reload does not keep another).
    pub fn interned(s: &str) -> ByteStr {
        use std::collections::HashSet;
        use std::sync::{LazyLock, Mutex};
        static TABLE: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
        let mut set = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let kept = match set.get(s) {
            Some(k) => *k,
            None => {
                let k: &'static str = Box::leak(s.to_owned().into_boxed_str());
                set.insert(k);
                k
            }
        };
        ByteStr::from_static(kept)
    }
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
    /// `b` seen as a string, borrowed (no reference count taken, unlike a clone).
    ///
    /// # Safety
    /// `b` must be valid UTF-8.
    #[inline]
    pub unsafe fn view(b: &Bytes) -> &ByteStr {
        // SAFETY: `ByteStr` is `repr(transparent)` over `Bytes`; the caller vouches for
        // UTF-8.
        unsafe { &*(b as *const Bytes as *const ByteStr) }
    }
    /// A sub-string sharing the same buffer. `range` must lie on char boundaries of `self`.
    pub fn slice_str(&self, sub: &str) -> ByteStr {
        ByteStr(self.0.slice_ref(sub.as_bytes()))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        ByteStr(Bytes::from(s))
    }
}
impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        ByteStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}
impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A structured field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(ByteStr),
    Array(Vec<Value>),
    Map(Fields),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Ordered field map. Events carry few fields, so a vector with linear lookup beats a
/// hash map and does not allocate until the first insert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(SmolStr, Value)>);

impl Fields {
    pub const fn new() -> Fields {
        Fields(Vec::new())
    }
    /// Empty, with room for `n` fields.
    pub fn with_capacity(n: usize) -> Fields {
        Fields(Vec::with_capacity(n))
    }
    /// Room for this many fields without growing.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
    /// Set a field whose name is a literal (no copy of the name).
    #[inline]
    pub fn insert_static(&mut self, key: &'static str, value: Value) {
        self.insert(SmolStr::new_static(key), value);
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        let kb = key.as_bytes();
        self.0.iter().find(|(k, _)| short_eq(k.as_bytes(), kb)).map(|(_, v)| v)
    }
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Set `key`, replacing an existing value (keeps its position).
    #[inline]
    pub fn insert(&mut self, key: impl Into<SmolStr>, value: Value) {
        let key = key.into();
        let kb = key.as_bytes();
        match self.0.iter_mut().find(|(k, _)| short_eq(k.as_bytes(), kb)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
    /// Room for `n` more fields without growing.
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve(n);
    }
    /// Put a field first, before the existing ones; a key already present takes the
    /// value where it is (as `insert`).
    pub fn insert_first(&mut self, key: &'static str, value: Value) {
        match self.get_mut(key) {
            Some(slot) => *slot = value,
            None => self.0.insert(0, (SmolStr::new_static(key), value)),
        }
    }
    /// Move every field of `other` in (as `insert`: an existing key keeps its position
    /// and takes the new value).
    pub fn absorb(&mut self, other: Fields) {
        if self.0.is_empty() {
            *self = other;
            return;
        }
        self.0.reserve(other.0.len());
        for (k, v) in other.0 {
            self.insert(k, v);
        }
    }
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.0.iter_mut().map(|(k, v)| (k.as_str(), v))
    }
}

/// Byte equality tuned for short strings (field names, label values): lengths first,
/// then one or two overlapping word loads instead of a call to `memcmp`.
#[inline]
pub fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    #[inline(always)]
    fn w8(s: &[u8], i: usize) -> u64 {
        u64::from_ne_bytes(s[i..i + 8].try_into().unwrap())
    }
    #[inline(always)]
    fn w4(s: &[u8], i: usize) -> u32 {
        u32::from_ne_bytes(s[i..i + 4].try_into().unwrap())
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

#[cfg(test)]
mod short_eq_tests {
    use super::short_eq;

    #[test]
    fn agrees_with_slice_equality() {
        let words = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "abd",
            "xbc",
            "level",
            "event",
            "levem",
            "trace_id",
            "trace_ie",
            "duration_ms",
            "duration_ns",
            "0123456789abcdef",
            "0123456789abcdeF",
            "0123456789abcdefg",
            "0123456789abcdefh",
        ];
        for a in words {
            for b in words {
                assert_eq!(short_eq(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
            }
        }
    }
}

#[cfg(test)]
mod interned_tests {
    use super::ByteStr;

    #[test]
    fn equal_strings_share_one_copy_and_clones_copy_the_pointer() {
        let a = ByteStr::interned("payment_failed");
        let b = ByteStr::interned(&String::from("payment_failed"));
        assert_eq!(a, b);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "one copy for equal strings");
        let c = a.clone();
        assert_eq!(c.as_str().as_ptr(), a.as_str().as_ptr());
        assert_ne!(ByteStr::interned("other").as_str().as_ptr(), a.as_str().as_ptr());
    }
}
