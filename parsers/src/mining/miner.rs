//! Steps 2 and 3: shapes by hash, templates, generalisation, eviction, ids.

use super::*;

/// A learned template.
#[derive(Debug, Clone)]
pub struct Template {
    pub tokens: Vec<Tok>,
    /// Lines mined into this template (including templates merged into it).
    pub count: u64,
    /// Stable id: FNV-1a of the text, 16 hex digits.
    pub id: String,
    pub text: String,
    /// An example line (the first seen).
    pub example: String,
    /// Ids of templates merged into this one.
    pub aliases: Vec<String>,
    /// Set when this template was merged into another (index).
    pub(super) merged_into: Option<u32>,
    pub(super) last_seen: u64,
}

/// Result of mining one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mined {
    /// Index of the shape (stable for this miner; use with [`Miner::template_of_shape`]).
    pub shape: u32,
    /// Index of the template now holding the message.
    pub template: u32,
}

pub(super) struct Shape {
    pub(super) template: u32,
}

/// The online template miner.
pub struct Miner {
    pub(super) cfg: MinerConfig,
    pub(super) masker: Masker,
    pub(super) shapes: IdMap<u32>,
    pub(super) shape_list: Vec<Shape>,
    pub(super) templates: Vec<Template>,
    /// Live templates by token count.
    pub(super) by_len: HashMap<usize, Vec<u32>>,
    /// (len, position, hash of the other tokens) → (distinct words seen there, members).
    pub(super) families: IdMap<Family>,
    /// (position, neighbours, brackets) → families there whose position has shown two
    /// words: when several messages vary at the same place, it is a field.
    pub(super) contexts: IdMap<Context>,
    pub(super) clock: u64,
    pub(super) live: usize,
}

/// The places where a field was seen: see [`Miner::recurring`].
#[derive(Default)]
pub(super) struct Context {
    /// Families varying there.
    keys: Vec<u64>,
    /// Different words seen there.
    words: Vec<Box<str>>,
    /// Templates with a word there.
    pub(super) members: Vec<u32>,
}

#[derive(Default)]
pub(super) struct Family {
    pub(super) words: Vec<u64>,
    pub(super) members: Vec<u32>,
    /// Every word so far starts with a capital (`Started`, `GET`): states and verbs,
    /// which need twice as many distinct values to count as a variable.
    pub(super) capitalised: bool,
}

impl Miner {
    pub fn new(cfg: MinerConfig) -> Miner {
        Miner {
            masker: Masker { off: cfg.rules_off, ..Masker::default() },
            cfg,
            shapes: IdMap::default(),
            shape_list: Vec::new(),
            templates: Vec::new(),
            by_len: HashMap::new(),
            families: IdMap::default(),
            contexts: IdMap::default(),
            clock: 0,
            live: 0,
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.cfg
    }

    /// Mine one message.
    pub fn mine(&mut self, msg: &[u8]) -> Mined {
        self.clock += 1;
        self.masker.run(msg, &self.cfg.masks, false);
        let h = self.masker.hash;
        if let Some(&s) = self.shapes.get(&h) {
            let t = self.root(self.shape_list[s as usize].template);
            self.shape_list[s as usize].template = t;
            let tpl = &mut self.templates[t as usize];
            tpl.count += 1;
            tpl.last_seen = self.clock;
            return Mined { shape: s, template: t };
        }
        self.masker.run(msg, &self.cfg.masks, true);
        let toks = self.masker.shape_tokens(msg);
        let t = match self.find_fit(&toks) {
            Some(t) => t,
            None => self.add_template(toks, msg),
        };
        let t = self.root(t);
        let tpl = &mut self.templates[t as usize];
        tpl.count += 1;
        tpl.last_seen = self.clock;
        let s = self.shape_list.len() as u32;
        self.shape_list.push(Shape { template: t });
        self.shapes.insert(h, s);
        if self.live > self.cfg.max_templates {
            self.evict();
        }
        Mined { shape: s, template: t }
    }

    /// Distinct masked token sequences seen (each one map entry).
    pub fn shape_count(&self) -> usize {
        self.shapes.len()
    }

    /// The template a shape belongs to now (after later merges).
    pub fn template_of_shape(&self, shape: u32) -> u32 {
        self.root(self.shape_list[shape as usize].template)
    }

    pub fn template(&self, t: u32) -> &Template {
        &self.templates[t as usize]
    }

    /// Live templates (not merged into another), most frequent first.
    pub fn templates(&self) -> Vec<&Template> {
        let mut v: Vec<&Template> =
            self.templates.iter().filter(|t| t.merged_into.is_none() && !t.tokens.is_empty()).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
        v
    }

    /// The live template that an id (current or an alias) now belongs to.
    pub fn resolve(&self, id: &str) -> Option<&Template> {
        let i = self.templates.iter().position(|t| t.id == id)?;
        Some(&self.templates[self.root(i as u32) as usize])
    }

    pub(super) fn root(&self, mut t: u32) -> u32 {
        while let Some(n) = self.templates[t as usize].merged_into {
            t = n;
        }
        t
    }

    /// A live template the shape fits: same length with `<*>` where they differ, or a
    /// `<*>` that takes several tokens.
    pub(super) fn find_fit(&self, toks: &[Tok]) -> Option<u32> {
        // A template without a word of its own (`<*>`, from a line that is one number)
        // takes no line that has one: it would be a catch-all for every short message
        // (`done`, `deleting <*>`).
        let has_words = toks.iter().any(has_word);
        if let Some(c) = self.by_len.get(&toks.len()) {
            for &t in c {
                let tt = &self.templates[t as usize].tokens;
                if tt.iter().zip(toks).all(|(a, b)| tok_fits(a, b)) && (!has_words || tt.iter().any(has_word)) {
                    return Some(t);
                }
            }
        }
        // A variable spanning more tokens: templates shorter by 1..=4 with a <*>, or by
        // up to 15 with a quoted phrase (a user agent is a dozen words).
        for d in 1..=15usize {
            if d >= toks.len() {
                break;
            }
            if let Some(c) = self.by_len.get(&(toks.len() - d)) {
                for &t in c {
                    let tt = &self.templates[t as usize].tokens;
                    // Cheap checks first: the ends must agree unless a <*> is there.
                    let ends = |a: Option<&Tok>, b: Option<&Tok>| match (a, b) {
                        (Some(Tok::Lit(s)), Some(_)) if phrase_quote(s).is_some() => true,
                        (Some(a), Some(b)) => tok_fits(a, b),
                        (a, b) => a == b,
                    };
                    let spanning = if d <= 4 { tt.iter().any(spans) } else { tt.iter().any(is_phrase) };
                    if spanning
                        && ends(tt.first(), toks.first())
                        && ends(tt.last(), toks.last())
                        && tt.iter().any(has_word)
                        && fits_with_spans(tt, toks)
                    {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    pub(super) fn add_template(&mut self, toks: Vec<Tok>, example: &[u8]) -> u32 {
        let t = self.push_template(toks, String::from_utf8_lossy(example).into_owned(), Vec::new());
        self.absorb_narrower(t);
        self.register_families(t);
        t
    }

    /// Templates of the same length that `t` covers (each of their tokens fits its token:
    /// `net:<*>-bddd-<*>` under `net:<*>`) join it: a line is never left in a narrower
    /// template than the one the next such line goes to.
    pub(super) fn absorb_narrower(&mut self, t: u32) {
        let tt = &self.templates[t as usize].tokens;
        let len = tt.len();
        // Longer ones too when `t` has a quoted phrase (`query="<*>"` covers
        // `query="desk lamp"`). (Not for a bare `<*>`: on HPC that cost 0.045.)
        let longer = if tt.iter().any(is_phrase) { 15 } else { 0 };
        let covered: Vec<u32> = (len..=len + longer)
            .filter_map(|l| self.by_len.get(&l))
            .flatten()
            .copied()
            .filter(|&u| u != t)
            .filter(|&u| {
                let (a, b) = (&self.templates[t as usize].tokens, &self.templates[u as usize].tokens);
                a != b
                    && if a.len() == b.len() {
                        a.iter().zip(b).all(|(x, y)| tok_fits(x, y))
                    } else {
                        a.iter().any(has_word) && fits_with_spans(a, b)
                    }
            })
            .collect();
        for u in covered {
            self.unlist(u);
            let (count, id, aliases) = {
                let tm = &mut self.templates[u as usize];
                tm.merged_into = Some(t);
                (tm.count, tm.id.clone(), std::mem::take(&mut tm.aliases))
            };
            let tt = &mut self.templates[t as usize];
            tt.count += count;
            tt.aliases.push(id);
            tt.aliases.extend(aliases);
        }
    }

    /// Take live template `t` off the live lists (it merged into another or is forgotten).
    fn unlist(&mut self, t: u32) {
        let len = self.templates[t as usize].tokens.len();
        if let Some(v) = self.by_len.get_mut(&len) {
            v.retain(|&x| x != t);
        }
        self.live -= 1;
    }

    pub(super) fn push_template(&mut self, tokens: Vec<Tok>, example: String, aliases: Vec<String>) -> u32 {
        let text = tokens.iter().map(Tok::text).collect::<Vec<_>>().join(" ");
        let id = crate::templates::template_id(&text);
        let t = self.templates.len() as u32;
        self.by_len.entry(tokens.len()).or_default().push(t);
        self.templates.push(Template {
            tokens,
            count: 0,
            id,
            text,
            example,
            aliases,
            merged_into: None,
            last_seen: self.clock,
        });
        self.live += 1;
        t
    }

    pub(super) fn family_key(tokens: &[Tok], p: usize) -> u64 {
        let mut h = mix(tokens.len() as u64, p as u64);
        for (i, t) in tokens.iter().enumerate() {
            h = if i == p {
                mix(h, SEP_HASH)
            } else {
                match t {
                    Tok::Var => mix(h, VAR_HASH),
                    Tok::Lit(s) => hash_bytes(h, s.as_bytes()),
                }
            };
        }
        h
    }

    /// Record the template's words in the families of each position; merge a family
    /// that reaches `min_distinct` different words.
    pub(super) fn register_families(&mut self, t: u32) {
        let n = self.templates[t as usize].tokens.len();
        // Short messages are named by their words (`boot (command <*>)`, `cupsd startup
        // succeeded`): a position generalises only with enough other words around it.
        let literals = self.templates[t as usize].tokens.iter().filter(|x| **x != Tok::Var).count();
        let min_context = self.cfg.min_context;
        for p in 0..n {
            // (A word that is partly a value already, `host:<*>`, `KB<*>~abc~<*>`, needs no
            // context: its shape says it varies.)
            let valued = self.cfg.rules_off & rule::VALUED_WORDS == 0
                && matches!(&self.templates[t as usize].tokens[p], Tok::Lit(s) if s.contains(VAR));
            if !valued && literals < min_context + 1 {
                continue;
            }
            let first_word = self.cfg.rules_off & rule::FIRST_WORD == 0;
            if !valued && first_word && p == 0 && literals < min_context + 2 {
                continue;
            }
            let (word, cap) = match &self.templates[t as usize].tokens[p] {
                Tok::Var => continue,
                Tok::Lit(s) => (
                    hash_bytes(0, s.as_bytes()),
                    s.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                        .starts_with(|c: char| c.is_ascii_uppercase()),
                ),
            };
            let key = Self::family_key(&self.templates[t as usize].tokens, p);
            let f = self.families.entry(key).or_insert_with(|| Family { capitalised: true, ..Family::default() });
            if !f.words.contains(&word) {
                f.words.push(word);
                f.capitalised &= cap;
            }
            f.members.push(t);
            let cap_rule = self.cfg.rules_off & rule::CAPITALISED == 0;
            let need = self.cfg.min_distinct.max(2) * if cap_rule && f.capitalised { 2 } else { 1 };
            if f.words.len() >= need {
                let members: Vec<u32> = std::mem::take(&mut f.members);
                self.families.remove(&key);
                self.merge_at(members, p);
                return; // the merged template registers its own families
            }
            let varies = f.words.len() >= 2;
            if self.cfg.rules_off & rule::RECURRING == 0 && self.recurring(t, p, key, varies) {
                return;
            }
        }
        if self.cfg.rules_off & rule::QUOTED_PHRASES == 0 && literals > min_context {
            self.register_phrases(t);
        }
    }

    /// Quoted phrases (`query="desk lamp"`, `"Mozilla/<*> (X11; Linux <*>) …"`): a run
    /// of words from one opening quote to its closing one. Phrases of any number of words
    /// between the same beginning and end of a message are one family; `min_distinct`
    /// different ones make it one value, `query="<*>"`, whose `<*>` takes several words.
    fn register_phrases(&mut self, t: u32) {
        let tokens = &self.templates[t as usize].tokens;
        let n = tokens.len();
        let mut found = Vec::new();
        let mut p = 0;
        while p < n {
            let Some(k) = phrase_at(tokens, p) else {
                p += 1;
                continue;
            };
            found.push((p, k));
            p += k;
        }
        for (p, k) in found {
            let tokens = &self.templates[t as usize].tokens;
            let mut key = mix(PHRASE_HASH, p as u64);
            for x in tokens[..p].iter().chain(&tokens[p + k..]) {
                key = match x {
                    Tok::Var => mix(key, VAR_HASH),
                    Tok::Lit(s) => hash_bytes(mix(key, SEP_HASH), s.as_bytes()),
                };
            }
            // The key of `key="…"` belongs to the family too.
            let open = tokens[p].text();
            let at = open.find(['"', '\'']).unwrap_or(0);
            key = hash_bytes(mix(key, (n - k) as u64), &open.as_bytes()[..=at]);
            let word = tokens[p..p + k].iter().fold(0, |h, x| hash_bytes(mix(h, SEP_HASH), x.text().as_bytes()));
            let f = self.families.entry(key).or_default();
            if !f.words.contains(&word) {
                f.words.push(word);
            }
            f.members.push(t);
            if f.words.len() >= self.cfg.min_distinct.max(2) {
                let members: Vec<u32> = std::mem::take(&mut f.members);
                self.families.remove(&key);
                self.merge_phrase(members, p, n - p - k);
                return;
            }
        }
    }

    /// Merge templates that differ only in the quoted phrase after `before` tokens and
    /// before the last `after` tokens.
    fn merge_phrase(&mut self, members: Vec<u32>, before: usize, after: usize) {
        let mut live: Vec<u32> = members.into_iter().map(|m| self.root(m)).collect();
        live.sort_unstable();
        live.dedup();
        live.retain(|&m| self.templates[m as usize].tokens.len() > before + after);
        let Some(&first) = live.first() else { return };
        let phrases: Vec<String> = live
            .iter()
            .map(|&m| {
                let tt = &self.templates[m as usize].tokens;
                tt[before..tt.len() - after].iter().map(Tok::text).collect::<Vec<_>>().join(" ")
            })
            .collect();
        let words: Vec<&str> = phrases.iter().map(String::as_str).collect();
        let Some(Tok::Lit(tok)) = framed_var(&words) else { return };
        if phrase_quote(&tok).is_none() {
            return;
        }
        let ft = &self.templates[first as usize].tokens;
        let mut tokens: Vec<Tok> = ft[..before].to_vec();
        tokens.push(Tok::Lit(tok));
        tokens.extend_from_slice(&ft[ft.len() - after..]);
        self.merge_into(live, tokens);
    }

    /// A field: a word that is partly a value already (`[scheduler-<*>]`) or the value of
    /// a `key=`, at the same place (position, the word before, its brackets or key) in
    /// several messages. Once two messages vary there, or `min_distinct` different words
    /// have been seen there across messages, it is a variable in all of them, whatever
    /// each message's own count: three thread pools, or user names each seen once in a
    /// different message, no longer split every message. Plain words (`onSleep`, `Yes`)
    /// and the first word, which names the message (`mDNS_RegisterInterface:`), keep the
    /// usual count. True when templates were merged.
    fn recurring(&mut self, t: u32, p: usize, key: u64, varies: bool) -> bool {
        let tokens = &self.templates[t as usize].tokens;
        let Tok::Lit(w) = &tokens[p] else { return false };
        let eq_at = w.find('=').filter(|&k| k > 0 && k + 1 < w.len());
        if p == 0 || !(w.contains(VAR) || eq_at.is_some()) {
            return false;
        }
        // (Quoted values are phrases: `register_phrases` takes them.)
        if phrase_at(tokens, p).is_some() {
            return false;
        }
        let side = |q: Option<&Tok>| match q {
            None => 1,
            Some(Tok::Var) => VAR_HASH,
            Some(Tok::Lit(s)) => hash_bytes(2, s.as_bytes()),
        };
        let kind = match eq_at {
            Some(k) => hash_bytes(3, &w.as_bytes()[..=k]),
            None => (w.as_bytes()[0] as u64) << 8 | w.as_bytes()[w.len() - 1] as u64,
        };
        let ctx_key = mix(mix(p as u64, side(p.checked_sub(1).and_then(|q| tokens.get(q)))), kind);
        let word: Box<str> = w.clone();
        let ctx = self.contexts.entry(ctx_key).or_default();
        if varies && !ctx.keys.contains(&key) {
            ctx.keys.push(key);
        }
        if !ctx.words.contains(&word) {
            ctx.words.push(word);
        }
        ctx.members.push(t);
        if ctx.keys.len() < 2 && ctx.words.len() < self.cfg.min_distinct.max(2) {
            return false;
        }
        let Some(ctx) = self.contexts.remove(&ctx_key) else { return false };
        let words: Vec<&str> = ctx.words.iter().map(|w| &**w).collect();
        if words.windows(2).any(|w| net(w[0]) != net(w[1])) {
            return false;
        }
        // Words no framing keeps balanced (`[traceId=<*>]` and `[traceId=<*>`) are not
        // one field.
        let Some(tok) = framed_var(&words) else { return false };
        let mut merged = false;
        for m in ctx.members {
            let m = self.root(m);
            let mt = &self.templates[m as usize].tokens;
            if mt.len() <= p || mt[p] == tok || !tok_fits(&tok, &mt[p]) {
                continue;
            }
            let mut new = mt.clone();
            new[p] = tok.clone();
            fold_into_neighbour(&mut new, p);
            self.merge_into(vec![m], new);
            merged = true;
        }
        merged
    }

    /// Merge live templates (differing only at `p`) into one with `<*>` at `p`.
    pub(super) fn merge_at(&mut self, members: Vec<u32>, p: usize) {
        let mut live: Vec<u32> = members.into_iter().map(|m| self.root(m)).collect();
        live.sort_unstable();
        live.dedup();
        live.retain(|&m| self.templates[m as usize].tokens.len() > p);
        let Some(&first) = live.first() else { return };
        let mut tokens = self.templates[first as usize].tokens.clone();
        // What every member has around the differing part stays literal: `user=root`,
        // `user=guest`, … → `user=<*>`; `(Active)`, `(Paused)`, … → `(<*>)`.
        let words: Vec<&str> = live
            .iter()
            .filter_map(|&m| match &self.templates[m as usize].tokens[p] {
                Tok::Lit(s) => Some(&**s),
                Tok::Var => None,
            })
            .collect();
        // Words that open or close brackets differently (`{"time":…` and a word without
        // its `{`) are not values of one variable: a template must keep its lines'
        // brackets. (Quotes: a member whose word has an unpaired one does not fit the
        // merged `<*>`, see `tok_fits`.)
        if words.windows(2).any(|w| net(w[0]) != net(w[1])) {
            return;
        }
        tokens[p] = if words.len() == live.len() {
            match framed_var(&words) {
                Some(t) => t,
                None => return,
            }
        } else {
            Tok::Var
        };
        fold_into_neighbour(&mut tokens, p);
        self.merge_into(live, tokens);
    }

    /// Merge the live templates `live` into one with `tokens` (each member that fits it).
    fn merge_into(&mut self, mut live: Vec<u32>, tokens: Vec<Tok>) {
        // A member whose root has since changed shape (another merge folded a token away)
        // may not fit: it stays as it is, never holding lines the merged one cannot.
        live.retain(|&m| {
            let mt = &self.templates[m as usize].tokens;
            if mt.len() == tokens.len() {
                tokens.iter().zip(mt).all(|(a, b)| tok_fits(a, b))
            } else {
                mt.len() > tokens.len() && fits_with_spans(&tokens, mt)
            }
        });
        if live.is_empty() {
            return;
        }
        let mut aliases = Vec::new();
        let mut count = 0;
        for &m in &live {
            let tm = &self.templates[m as usize];
            aliases.push(tm.id.clone());
            aliases.extend(tm.aliases.iter().cloned());
            count += tm.count;
        }
        let example = self.templates[live[0] as usize].example.clone();
        // The merged template may already exist (or be covered by one).
        let target = match self.find_fit(&tokens) {
            Some(t) if !live.contains(&t) => t,
            _ => {
                let t = self.push_template(tokens, example, Vec::new());
                self.templates[t as usize].last_seen = self.clock;
                t
            }
        };
        for &m in &live {
            if m != target {
                self.unlist(m);
                self.templates[m as usize].merged_into = Some(target);
            }
        }
        let tt = &mut self.templates[target as usize];
        tt.count += count;
        tt.aliases.extend(aliases);
        tt.aliases.retain(|a| *a != tt.id);
        // Older templates the merged one covers (`index=customers … user=olga.<*>@…`
        // under `index=<*> … user=<*>`) join it too.
        self.absorb_narrower(target);
        self.register_families(target);
    }

    /// Forget the least recently seen tenth of the templates (their shapes too).
    pub(super) fn evict(&mut self) {
        let mut live: Vec<(u64, u32)> = self
            .templates
            .iter()
            .enumerate()
            .filter(|(_, t)| t.merged_into.is_none() && t.count > 0)
            .map(|(i, t)| (t.last_seen, i as u32))
            .collect();
        live.sort_unstable();
        let drop_n = (self.cfg.max_templates / 10).max(1);
        let gone: std::collections::HashSet<u32> = live.iter().take(drop_n).map(|&(_, t)| t).collect();
        for &t in &gone {
            self.unlist(t);
            let tm = &mut self.templates[t as usize];
            tm.count = 0;
            tm.tokens.clear();
            tm.example.clear();
            tm.aliases.clear();
        }
        // Shapes of forgotten templates are forgotten too (they are re-learned if seen).
        let roots: Vec<u32> = self.shape_list.iter().map(|s| self.root(s.template)).collect();
        self.shapes.retain(|_, s| !gone.contains(&roots[*s as usize]));
        self.families.retain(|_, f| {
            f.members.retain(|m| !gone.contains(m));
            !f.members.is_empty()
        });
        self.contexts.retain(|_, c| {
            c.members.retain(|m| !gone.contains(m));
            !c.members.is_empty()
        });
    }

    /// The variable values of `msg` for template `t`, in order (empty if it does not
    /// fit, which happens only for a template changed by later merges).
    pub fn params(&mut self, msg: &[u8], t: u32) -> Vec<String> {
        let tpl = &self.templates[t as usize].tokens;
        let words: Vec<&[u8]> = msg.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect();
        let mut out = Vec::new();
        let mut failed = vec![false; (tpl.len() + 1) * (words.len() + 1)];
        if align(tpl, &words, 0, 0, &mut out, &mut failed) {
            out.into_iter().map(|s| String::from_utf8_lossy(&s).into_owned()).collect()
        } else {
            Vec::new()
        }
    }

    /// Rebuild from saved templates (text, count, aliases); shapes are re-learned.
    pub fn restore(&mut self, saved: impl IntoIterator<Item = (String, u64, Vec<String>, String)>) {
        for (text, count, aliases, example) in saved {
            let tokens: Vec<Tok> = text
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| if s == VAR { Tok::Var } else { Tok::Lit(s.into()) })
                .collect();
            if tokens.is_empty() || self.find_fit(&tokens).is_some() {
                continue;
            }
            let t = self.push_template(tokens, example, aliases);
            self.templates[t as usize].count = count;
            self.register_families(t);
        }
    }
}

/// A token with a letter of its own (outside its `<*>` parts).
/// How a word opens or closes brackets: words that differ here are not values of one
/// variable.
fn net(w: &str) -> [i64; 3] {
    let c = |b: u8| w.bytes().filter(|&x| x == b).count() as i64;
    [c(b'(') - c(b')'), c(b'[') - c(b']'), c(b'{') - c(b'}')]
}

/// A quoted phrase starting at token `p` (`query="desk`, …, `lamp"`; or one token
/// `"x"`): its number of tokens. The words inside hold no quote.
fn phrase_at(tokens: &[Tok], p: usize) -> Option<usize> {
    let Tok::Lit(first) = &tokens[p] else { return None };
    let fb = first.as_bytes();
    let at = fb.iter().position(|&b| b == b'"' || b == b'\'')?;
    let q = fb[at];
    // Only at the start, or after `key=` / `key:`.
    if at > 0 && !matches!(fb[at - 1], b'=' | b':') {
        return None;
    }
    let rest = &fb[at + 1..];
    if let Some(close) = rest.iter().position(|&b| b == q) {
        // One token: `"x"`, with nothing after the closing quote.
        return (close > 0 && close + 1 == rest.len()).then_some(1);
    }
    for (k, t) in tokens.iter().enumerate().skip(p + 1).take(15) {
        let Tok::Lit(s) = t else { continue };
        let b = s.as_bytes();
        match b.iter().position(|&c| c == q) {
            None => {}
            Some(i) if i + 1 == b.len() && i > 0 => return Some(k - p + 1),
            Some(_) => return None,
        }
    }
    None
}

/// A bare `<*>` at `p` next to another folds into it (a variable may span tokens). (A
/// `key=<*>` literal stays, whatever its neighbours.)
fn fold_into_neighbour(tokens: &mut Vec<Tok>, p: usize) {
    if tokens[p] == Tok::Var && ((p > 0 && tokens[p - 1] == Tok::Var) || tokens.get(p + 1) == Some(&Tok::Var)) {
        tokens.remove(p);
    }
}

/// A template token that may take several words: `<*>` or a quoted phrase.
fn spans(t: &Tok) -> bool {
    *t == Tok::Var || is_phrase(t)
}

fn is_phrase(t: &Tok) -> bool {
    matches!(t, Tok::Lit(s) if phrase_quote(s).is_some())
}

fn has_word(t: &Tok) -> bool {
    match t {
        Tok::Var => false,
        Tok::Lit(s) => s.split(VAR).any(|part| part.bytes().any(|b| b.is_ascii_alphabetic())),
    }
}

/// The token that covers `words` (different texts of one template position): what
/// they all have around the differing part that frames a value stays literal, `<*>`
/// takes the rest: a `key=` they all start with (`user=root`, `user=guest` →
/// `user=<*>`), opening brackets and quotes before the value and closing ones, `:`,
/// `,`, `;` after it (`(Active)`, `(Paused)` → `(<*>)`). Other shared text (`root14_local`,
/// `root26_local`) is not kept: the next value may not share it. A bare `<*>` when
/// nothing frames them.
pub(super) fn framed_var(words: &[&str]) -> Option<Tok> {
    let Some((first, rest)) = words.split_first() else { return Some(Tok::Var) };
    let f = first.as_bytes();
    let shortest = words.iter().map(|w| w.len()).min().unwrap_or(0);
    let common_prefix =
        rest.iter().fold(f.len(), |n, w| f.iter().zip(w.as_bytes()).take(n).take_while(|(a, b)| a == b).count());
    let common_suffix = rest.iter().fold(f.len(), |n, w| {
        f.iter().rev().zip(w.as_bytes().iter().rev()).take(n).take_while(|(a, b)| a == b).count()
    });
    let opening = |b: &u8| matches!(b, b'(' | b'[' | b'{' | b'"' | b'\'');
    let closing = |b: &u8| matches!(b, b')' | b']' | b'}' | b'"' | b'\'' | b':' | b',' | b';');
    // The beginning every word shares (class 4: a constant prefix stays literal), never
    // into a `<*>`: all of it when every word's value starts right there
    // (`Bundle_for_KB<*>…` → `Bundle_for_KB<*>`), else up to its last separator, `=`,
    // opening bracket or quote (`user=`, `chdir(`, `org.acme.Pool.` from
    // `org.acme.Pool.release:<*>` and `org.acme.Pool.acquire:<*>`).
    let shared = &f[..common_prefix];
    let var_at = shared.windows(3).position(|w| w == VAR.as_bytes());
    let shared = &shared[..var_at.unwrap_or(shared.len())];
    let sep = |b: &u8| matches!(b, b'=' | b'.' | b'_' | b'-' | b'/' | b':' | b'~' | b'@' | b'#') || opening(b);
    let mut pre = match var_at {
        Some(k) => k,
        None => shared.iter().rposition(sep).map_or(0, |k| k + 1),
    };
    let mut suf = f[f.len() - common_suffix..].iter().rev().take_while(|b| closing(b)).count();
    // Leave at least one character of every word to the variable.
    while pre + suf >= shortest && (pre > 0 || suf > 0) {
        if suf > 0 {
            suf -= 1;
        } else {
            pre -= 1;
        }
    }
    // Brackets never cross the variable's edge: in every word, the part the variable
    // takes balances (`Foo.bar(Foo.java:42)` and `Baz.qux(Baz.java:7)` give `<*>`, not
    // `<*>)`). When no framing achieves that, the words are not one variable.
    let middle_ok = |pre: usize, suf: usize| {
        words.iter().all(|w| {
            // (Never inside a character: a shared byte prefix or suffix may end there.)
            pre + suf <= w.len()
                && w.is_char_boundary(pre)
                && w.is_char_boundary(w.len() - suf)
                && super::brackets_balance(&w[pre..w.len() - suf])
        })
    };
    while !middle_ok(pre, suf) {
        if suf > 0 {
            suf -= 1;
        } else if pre > 0 {
            pre -= 1;
        } else {
            return None;
        }
    }
    if pre == 0 && suf == 0 {
        return Some(Tok::Var);
    }
    Some(Tok::Lit(format!("{}{VAR}{}", &first[..pre], &first[first.len() - suf..]).into()))
}
