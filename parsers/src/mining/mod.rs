//! Template mining: learn printf templates (`Payment failed for user <*>: <*>`) from
//! messages nobody wrote a template for. Online, bounded, deterministic.
//!
//! How a message becomes a template:
//! 1. **Masking.** The message is split on whitespace. Inside each token, every run of
//!    letters and digits that contains a digit is a variable (`blk_-123` → `blk_<*>`,
//!    `ORD-00042` → `ORD-<*>`, `30000ms`, `0x1f`, ports, hex and numeric ids); variables
//!    joined by separators and one- or two-letter words are one variable
//!    (`attempt_1445_0020_m_000000_0` → `attempt_<*>`). Interface names (`eth0`, `ee0`)
//!    are words. Whole tokens that are e-mail addresses, URLs, paths (Unix and Windows), IPv6 addresses, host names with a
//!    digit, month and weekday names, or empty values (`()`, `""`) are variables, as is
//!    the value of `key=host.name`. A token made only of variables and separators
//!    (`10.0.0.1:8080`, a UUID, `1.5s`, `12:00:01`, `"x1"`) is one variable, the brackets
//!    and `:`, `,`, `;` framing it kept literal (`1920)` → `<*>)`, `[7]` → `[<*>]`); a unit
//!    after it (`512 KB`, `30 ms`) belongs to it; consecutive variable tokens fold into
//!    one, so a variable spanning a different number of tokens does not split a
//!    template (Drain3 #66). Brackets and `:`, `,`, `;` around a whole-token variable
//!    stay literal too (`(/var/x):` → `(<*>):`), an empty pair `()` is `(<*>)` with
//!    nothing in it, ids are not joined across a bracket (`0x7f(12)` → `<*>(<*>)`) and
//!    punctuation after a unit stays (`400 MB)` → `<*> <*>)`): a template keeps every
//!    literal character of its lines. Quoted words (`'Active'`) and word values of `key=value`
//!    are not masked: they are usually states, and merge only by step 3. User masks
//!    (regexes) run first.
//! 2. **Shapes.** The masked token sequence is a *shape*, found by a 64-bit hash in one
//!    map lookup: the whole per-line cost once a shape has been seen.
//! 3. **Templates.** A new shape joins an existing template it fits (a `<*>` may take
//!    one or more tokens), or starts its own. Templates that differ in one word only
//!    are kept apart until that position has shown `min_distinct` (4) different words,
//!    twice that if every one is capitalised (`Started`, `GET`): a few values
//!    (`opened`/`closed`, `up`/`down`, `Paused`/`Resumed`) are different messages, not a
//!    variable (the Drain3 #109 merge); many values (user names, host names) are one.
//!    A word generalises only with `min_context` (3) other words in the template, and
//!    the first word with one more: short messages are named by their words (`boot
//!    (command <*>)`, `cupsd startup succeeded`). A word that is partly a value already
//!    (`db-primary.internal:<*>`, `Pool.release:<*>`) needs no such context. A merged
//!    position keeps what frames every member's value (`user=<*>`, `(<*>)`,
//!    `chdir(<*>)`) and the prefix all members share, to its last separator
//!    (`org.acme.Pool.<*>` from `org.acme.Pool.release:<*>` and
//!    `org.acme.Pool.acquire:<*>`); such a token takes later words that fill it
//!    (`user=bob`), and a new or merged template that covers an older, narrower one
//!    absorbs it. A field that varies in two messages at the same place (a `[thread]`
//!    or a `key=` value after the same neighbour) is a variable whatever its count:
//!    three thread pools no longer split every message. A quoted phrase
//!    (`query="desk lamp"`, a user agent) is one value once `min_distinct` different
//!    phrases, of any number of words, stand between the same words: `query="<*>"`,
//!    whose `<*>` takes several words but never runs past its closing quote. A template without a word of its own (`<*>`, from a line
//!    that is only a number) takes no line that has one: it is never a catch-all for
//!    short messages (`done`, `deleting <*>`).
//!
//! Ids: `template_id` is the FNV-1a hash of the template text, the same in every
//! process. When templates generalise, the merged template gets a new id (its text
//! changed); the old ids stay known as aliases, [`Miner::resolve`] maps any id seen
//! before to the template that absorbed it, and lines mined earlier keep the id they
//! were given.
//!
//! Files: [`mask`] (step 1), [`miner`] (steps 2 and 3), [`align`] (spans and parameters).

use std::collections::HashMap;

mod align;
mod mask;
mod miner;
#[cfg(test)]
mod tests;

use align::*;
use mask::*;
pub use miner::{Mined, Miner, Template};

/// The text of a variable in a template.
pub const VAR: &str = "<*>";

/// Grouping accuracy (the Loghub benchmark's measure): the share of lines whose group —
/// the lines given the same template in `pred` — is exactly the lines sharing their
/// true event in `truth`.
pub fn grouping_accuracy<P: std::hash::Hash + Eq, T: std::hash::Hash + Eq>(pred: &[P], truth: &[T]) -> f64 {
    assert_eq!(pred.len(), truth.len(), "one prediction per line");
    if pred.is_empty() {
        return 1.0;
    }
    let mut pg: HashMap<&P, Vec<usize>> = HashMap::new();
    let mut tg: HashMap<&T, Vec<usize>> = HashMap::new();
    for (i, (p, t)) in pred.iter().zip(truth).enumerate() {
        pg.entry(p).or_default().push(i);
        tg.entry(t).or_default().push(i);
    }
    pred.iter().zip(truth).filter(|(p, t)| pg[p] == tg[t]).count() as f64 / pred.len() as f64
}

/// `()`, `[]` and `{}` nest properly in `s` (a template keeps its lines' brackets: the
/// property the tests and the fuzz target check).
pub fn brackets_balance(s: &str) -> bool {
    bytes_balance(s.as_bytes())
}

/// [`brackets_balance`] on bytes (the brackets are ASCII).
pub(crate) fn bytes_balance(s: &[u8]) -> bool {
    let mut stack = Vec::new();
    for &c in s {
        match c {
            b'(' | b'[' | b'{' => stack.push(c),
            b')' | b']' | b'}' => {
                let open = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty()
}

#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// Templates kept; the least recently seen are forgotten beyond this.
    pub max_templates: usize,
    /// Distinct words at one position before templates differing only there merge.
    pub min_distinct: usize,
    /// User masks: text matching any of these is a variable (applied before the rest).
    pub masks: Vec<regex::Regex>,
    /// Other literal tokens a template needs before one of its words may generalise.
    pub min_context: usize,
    /// Rules switched off (bits of [`rule`]): none by default. For measuring what each
    /// rule contributes on data it was not written for (the `mining-loo` benchmark).
    pub rules_off: u32,
}

/// The miner's rules by the kind of token they handle; each can be switched off with
/// [`MinerConfig::rules_off`].
pub mod rule {
    /// A unit after a number belongs to it (`512 KB`, `30 ms`).
    pub const UNITS: u32 = 1 << 0;
    /// Letters ending in one digit are a name, not a value (`eth0`, `awdl0`).
    pub const DEVICE_NAMES: u32 = 1 << 1;
    /// Month and weekday names are values (`Jun`, `Tue`).
    pub const DATE_WORDS: u32 = 1 << 2;
    /// The value of `key=host.name` is a value.
    pub const HOST_VALUES: u32 = 1 << 3;
    /// Dotted names with a digit are values (`node-12.example.com`).
    pub const HOSTS_WITH_DIGITS: u32 = 1 << 4;
    /// Values joined by separators and one- or two-letter words are one value
    /// (`attempt_1445_0020_m_000000_0`).
    pub const JOINED_IDS: u32 = 1 << 5;
    /// Words that all start with a capital (states, verbs) need twice `min_distinct`.
    pub const CAPITALISED: u32 = 1 << 6;
    /// The first word of a template needs one more word of context than the others.
    pub const FIRST_WORD: u32 = 1 << 7;
    /// A word that is partly a value already (`host:<*>`) needs no context.
    pub const VALUED_WORDS: u32 = 1 << 8;
    /// A position that varies in two messages at the same place (same neighbours and
    /// brackets) is a field, whatever its count of values.
    pub const RECURRING: u32 = 1 << 9;
    /// A quoted phrase of several words is one value once `min_distinct` different ones
    /// stand between the same words (`query="<*>"` takes `query="desk lamp"`).
    pub const QUOTED_PHRASES: u32 = 1 << 10;
    /// Every rule with its name.
    pub const ALL: [(u32, &str); 11] = [
        (UNITS, "units after numbers"),
        (DEVICE_NAMES, "device names are words"),
        (DATE_WORDS, "month and day names"),
        (HOST_VALUES, "key=host values"),
        (HOSTS_WITH_DIGITS, "host names with digits"),
        (JOINED_IDS, "ids joined by short words"),
        (CAPITALISED, "capitalised words need 2x"),
        (FIRST_WORD, "first word needs more context"),
        (VALUED_WORDS, "valued words need no context"),
        (RECURRING, "fields varying in two messages"),
        (QUOTED_PHRASES, "quoted phrases"),
    ];
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig { max_templates: 10_000, min_distinct: 4, masks: Vec::new(), min_context: 3, rules_off: 0 }
    }
}

use sluice_event::hash::{hash_bytes, mix, HashKeyed as IdMap};

const VAR_HASH: u64 = 0x9e37_79b9_7f4a_7c15;
const SEP_HASH: u64 = 0x2545_f491_4f6c_dd1d;
const PHRASE_HASH: u64 = 0x6a09_e667_f3bc_c909;

/// One piece of a masked token.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Piece {
    Lit(usize, usize),
    Var,
}

/// A token of a shape or template: literal text (which may contain `<*>` for masked
/// parts of the token) or a whole-token variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tok {
    Var,
    Lit(Box<str>),
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Tok::Var => VAR,
            Tok::Lit(s) => s,
        }
    }
}
