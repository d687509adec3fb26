//! Transform `parse`: a header format, then printf templates on the message.
//!
//! ```toml
//! [transforms.payments]
//! type = "parse"
//! inputs = ["payments_log"]
//! format = "{timestamp} {level} [{logger}] [{trace_id}] {message}"   # or a preset
//! templates = [{ event = "payment_failed", pattern = "Payment failed for user {user_id}: {error}" }]
//! templates_file = "templates/payments.toml"   # the same list, as [[templates]]
//! infer_level = false
//! on_error = "pass"                            # or "drop"
//! default_event = "http_request"               # event for lines no template matches
//! mine_unknown = true                          # learn templates of unmatched messages
//! max_templates = 10000                        # learned templates kept (LRU)
//! mine_masks = ['\bORD-\d+\b']                  # extra variable patterns
//! ```
//!
//! With `mine_unknown`, a message no declared template matches gets `template_id`,
//! `template` (`Payment failed for user <*>: <*>`) and `params` (the variable values,
//! in order), from the online miner in `sluice_parsers::mining`. Learned templates are
//! saved in `data_dir/templates/<stage>.json` (every 30 s and at shutdown; texts, counts
//! and ids, never example lines, which may hold unmasked PII) and reloaded at start.
//! `template_id` is the hash of the template text, so it is the same across restarts
//! and across sluice processes that learned the same template. When a learned template
//! later generalises (a fourth user name turns `session opened for alice` into `session
//! opened for <*>`), the merged template gets a new id; events already sent keep the old
//! one, and the file lists it under the new template's `aliases`, so a query can map old
//! ids to the new template.
//!
//! A line that does not fit the format keeps its raw text as `message` and gets
//! `parse_error` with the reason (or is dropped and counted with `on_error = "drop"`).
//! An unrecognised timestamp is kept in `timestamp_raw` and marked with
//! `timestamp_error`; the event keeps its ingest time.

use crate::{Emit, OptionError, Outcome, Transform, TransformConfig};
use serde::Deserialize;
use sluice_event::store::{Document, Store, StoreError};
use sluice_event::{Batch, ByteStr, Event, Fields, Timestamp, Value};
use sluice_parsers::mining::{Miner, MinerConfig};
use sluice_parsers::templates::{Scratch, TemplateSet, TemplateSpec};
use sluice_parsers::{level, Context, Format, ParseError, Parsed};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Pass,
    Drop,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateEntry {
    /// The event name lines matching the pattern get (`payment_failed`).
    pub event: String,
    /// The printf template: literal text and `{name}` / `{name:int}` placeholders.
    pub pattern: String,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    /// A preset (`json`, `logfmt`, `syslog`, `nginx_combined`, `apache_common`,
    /// `apache_combined`, `go_std`, `klog`) or a format string. Without it, only the
    /// templates are applied to the message.
    pub format: Option<String>,
    /// strftime layout for `{timestamp}` when it is not one of the recognised layouts.
    pub timestamp_format: Option<String>,
    /// Guess `level` from the message words when the format has none (`failed` → error).
    #[serde(default)]
    pub infer_level: bool,
    /// Printf templates tried on the message: `[{ event = "x", pattern = "…{user_id}…" }]`.
    #[serde(default)]
    pub templates: Vec<TemplateEntry>,
    /// A TOML file with more templates, as `[[templates]]` tables (`sluice templates mine --toml` writes one).
    pub templates_file: Option<String>,
    /// Lines that fail the format: `"pass"` them on raw with `parse_error`, or `"drop"` them (counted).
    #[serde(default)]
    pub on_error: OnError,
    /// `event` given to messages no template matches (none: no `event` field).
    pub default_event: Option<String>,
    /// Learn templates for messages no declared template matches.
    #[serde(default)]
    pub mine_unknown: bool,
    /// Learned templates kept in memory (least recently seen forgotten beyond).
    pub max_templates: Option<usize>,
    /// Extra variable patterns (regexes) for mining.
    #[serde(default)]
    pub mine_masks: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TemplatesFile {
    templates: Vec<TemplateEntry>,
}

impl TransformConfig for ParseConfig {
    fn build(&self, ctx: &crate::TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        let mut p = self.compile()?;
        if let (Some(m), Some(store)) = (&mut p.miner, &ctx.store) {
            let doc = format!("templates/{}.json", ctx.name);
            m.load(store, &doc)
                .map_err(|e| OptionError::new("mine_unknown", format!("cannot load learned templates: {e}")))?;
            m.saved_as = Some((store.clone(), doc));
        }
        Ok(Box::new(p))
    }
}

impl ParseConfig {
    pub fn compile(&self) -> Result<Parse, OptionError> {
        let format = match &self.format {
            Some(f) => Some(
                Format::compile(f, self.timestamp_format.as_deref())
                    .map_err(|m| OptionError::new("format", m.to_string()))?,
            ),
            None => None,
        };
        if let Some(tf) = &self.timestamp_format {
            if !tf.contains('%') {
                return Err(OptionError::new("timestamp_format", format!("\"{tf}\" has no strftime field such as %Y")));
            }
        }
        let mut specs: Vec<TemplateSpec> = self
            .templates
            .iter()
            .map(|t| TemplateSpec { event: t.event.clone(), pattern: t.pattern.clone() })
            .collect();
        if let Some(path) = &self.templates_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| OptionError::new("templates_file", format!("cannot read \"{path}\": {e}")))?;
            let file: TemplatesFile = toml::from_str(&text).map_err(|e| {
                OptionError::new("templates_file", format!("\"{path}\": {}", e.to_string().replace('\n', " ")))
            })?;
            specs.extend(file.templates.into_iter().map(|t| TemplateSpec { event: t.event, pattern: t.pattern }));
        }
        let templates = TemplateSet::compile(&specs).map_err(|m| OptionError::new("templates", m.to_string()))?;
        Ok(Parse {
            format,
            templates,
            infer_level: self.infer_level,
            on_error: self.on_error,
            default_event: self.default_event.as_deref().map(ByteStr::interned),
            scratch: Scratch::default(),
            parsed: Parsed::default(),
            fields_seen: 0,
            miner: if self.mine_unknown {
                let mut masks = Vec::new();
                for m in &self.mine_masks {
                    masks
                        .push(regex::Regex::new(m).map_err(|e| OptionError::new("mine_masks", format!("{m:?}: {e}")))?);
                }
                let defaults = MinerConfig::default();
                Some(Learned::new(Miner::new(MinerConfig {
                    max_templates: self.max_templates.unwrap_or(defaults.max_templates).max(1),
                    masks,
                    ..defaults
                })))
            } else {
                None
            },
        })
    }
}

pub struct Parse {
    format: Option<Format>,
    templates: TemplateSet,
    infer_level: bool,
    on_error: OnError,
    default_event: Option<ByteStr>,
    scratch: Scratch,
    parsed: Parsed,
    miner: Option<Learned>,
    /// The most fields an event has left this stage with.
    fields_seen: usize,
}

/// The miner of a parse stage, its cached field values and its file.
pub struct Learned {
    miner: Miner,
    /// Per template index: (template_id, template) as event values, built once.
    values: Vec<Option<(Value, Value)>>,
    /// Where the learned templates are kept (None: not kept).
    saved_as: Option<(Store, String)>,
    dirty: bool,
}

#[derive(serde::Serialize, Deserialize)]
struct SavedTemplate {
    id: String,
    template: String,
    count: u64,
    #[serde(default)]
    aliases: Vec<String>,
}

/// The learned-templates document of one parse stage.
#[derive(serde::Serialize, Deserialize)]
struct SavedTemplates {
    templates: Vec<SavedTemplate>,
}

impl Document for SavedTemplates {
    const VERSION: u32 = 1;
}

impl Learned {
    fn new(miner: Miner) -> Learned {
        Learned { miner, values: Vec::new(), saved_as: None, dirty: false }
    }

    fn load(&mut self, store: &Store, doc: &str) -> Result<(), StoreError> {
        let Some(saved) = store.load::<SavedTemplates>(doc)? else { return Ok(()) };
        self.miner.restore(saved.templates.into_iter().map(|t| (t.template, t.count, t.aliases, String::new())));
        Ok(())
    }

    /// Write the learned templates (through the durable-state store).
    pub fn save(&mut self) -> Result<(), StoreError> {
        let Some((store, doc)) = &self.saved_as else { return Ok(()) };
        if !self.dirty {
            return Ok(());
        }
        let saved = SavedTemplates {
            templates: self
                .miner
                .templates()
                .into_iter()
                .map(|t| SavedTemplate {
                    id: t.id.clone(),
                    template: t.text.clone(),
                    count: t.count,
                    aliases: t.aliases.clone(),
                })
                .collect(),
        };
        store.save(doc, &saved)?;
        self.dirty = false;
        Ok(())
    }

    fn annotate(&mut self, msg: &str, e: &mut Event) {
        let m = self.miner.mine(msg.as_bytes());
        self.dirty = true;
        let t = m.template as usize;
        if self.values.len() <= t {
            self.values.resize(t + 1, None);
        }
        let (id, text) = self.values[t].get_or_insert_with(|| {
            let tpl = self.miner.template(t as u32);
            (Value::Str(ByteStr::from(tpl.id.clone())), Value::Str(ByteStr::from(tpl.text.clone())))
        });
        e.fields.insert("template_id", id.clone());
        e.fields.insert("template", text.clone());
        let params = self.miner.params(msg.as_bytes(), m.template);
        e.fields.insert("params", Value::Array(params.into_iter().map(|p| Value::Str(ByteStr::from(p))).collect()));
    }
}

/// The `parse_error` value: most reasons are static texts (no allocation).
fn reason_value(reason: ParseError) -> ByteStr {
    match reason.0 {
        std::borrow::Cow::Borrowed(s) => ByteStr::from_static(s),
        std::borrow::Cow::Owned(s) => s.into(),
    }
}

fn level_value(l: sluice_parsers::Level) -> Value {
    Value::Str(ByteStr::from_static(l.as_str()))
}

impl Parse {
    fn save_learned(&mut self) {
        if let Some(l) = &mut self.miner {
            if let Err(e) = l.save() {
                tracing::warn!(error = %e, "cannot save learned templates");
            }
        }
    }

    /// Parse one event in place; an error says why the line did not fit the format.
    pub fn apply(&mut self, e: &mut Event, ctx: &Context) -> Result<(), ParseError> {
        // The line and the message are borrowed from the event, not cloned: a clone of a
        // slice of the read buffer is an atomic increment on a count the reading thread
        // is updating too (W1 spent ~13% of its CPU in such counts).
        if let Some(fmt) = &self.format {
            self.parsed.clear();
            // Room for every field the event will get (the most seen so far): one
            // allocation per event, no growing.
            self.parsed.fields = Fields::with_capacity(self.fields_seen);
            fmt.parse(e.message_str(), ctx, &mut self.parsed)?;
            let p = std::mem::take(&mut self.parsed);
            if p.level.is_none() && self.infer_level && e.fields.get("level").is_none() {
                let msg = p.message.as_ref().map_or(e.message(), |m| m.as_str());
                let level = level_value(level::infer(msg));
                e.fields.insert_static("level", level);
            }
            p.apply_to(e);
        } else if self.infer_level && e.fields.get("level").is_none() {
            let level = level_value(level::infer(e.message()));
            e.fields.insert_static("level", level);
        }
        if !self.templates.is_empty() {
            // (`e.message_str()`, spelled out: it would borrow all of `e`, and the
            // fields are written below.)
            let whole = match &e.message {
                Some(m) => m,
                // SAFETY: `message` is None only when the raw bytes are valid UTF-8.
                None => unsafe { ByteStr::view(&e.raw) },
            };
            // A multi-line record (message + stack trace): the template describes the
            // first line; the rest is kept as `stack_trace`.
            let first;
            let msg = match memchr::memchr(b'\n', whole.as_str().as_bytes()) {
                Some(nl) => {
                    let text = whole.as_str();
                    let rest = whole.slice_str(&text[nl + 1..]);
                    first = whole.slice_str(&text[..nl]);
                    e.fields.insert_static("stack_trace", Value::Str(rest));
                    &first
                }
                None => whole,
            };
            if let Some(m) = self.templates.matches(msg, &mut e.fields, &mut self.scratch) {
                e.fields.insert_static("event", Value::Str(m.event.clone()));
                e.fields.insert_static("template_id", Value::Str(m.template_id.clone()));
                return Ok(());
            }
        }
        if let Some(learned) = &mut self.miner {
            let msg = match &e.message {
                Some(m) => m.clone(),
                // SAFETY: `message` is None only when the raw bytes are valid UTF-8.
                None => unsafe { ByteStr::from_utf8_unchecked(e.raw.clone()) },
            };
            let text = msg.as_str();
            // The first line of a multi-line record, as for declared templates.
            let first = memchr::memchr(b'\n', text.as_bytes()).map_or(text, |nl| &text[..nl]);
            learned.annotate(first, e);
        }
        if let Some(d) = &self.default_event {
            if e.fields.get("event").is_none() {
                e.fields.insert_static("event", Value::Str(d.clone()));
            }
        }
        Ok(())
    }
}

impl Transform for Parse {
    fn tick_interval(&self) -> Option<std::time::Duration> {
        self.miner.as_ref().map(|_| std::time::Duration::from_secs(30))
    }

    fn tick(&mut self, _out: &mut dyn Emit) {
        self.save_learned();
    }

    fn finish(&mut self, _out: &mut dyn Emit) {
        self.save_learned();
    }

    fn process(&mut self, mut batch: Batch, out: &mut dyn Emit) -> Outcome {
        let ctx = Context { now: Timestamp::now() };
        let mut outcome = Outcome { reason: "parse_error", ..Outcome::default() };
        let mut failed: Vec<usize> = Vec::new();
        for (i, e) in batch.events.iter_mut().enumerate() {
            if let Err(reason) = self.apply(e, &ctx) {
                outcome.errors += 1;
                match self.on_error {
                    OnError::Pass => e.fields.insert_static("parse_error", Value::Str(reason_value(reason))),
                    OnError::Drop => failed.push(i),
                }
            }
            // At most 32, so an odd wide record does not size every event after it.
            self.fields_seen = self.fields_seen.max(e.fields.len().min(32));
        }
        if !failed.is_empty() {
            outcome.dropped = failed.len() as u64;
            let mut k = 0;
            let mut idx = 0;
            batch.events.retain(|_| {
                let keep = failed.get(k) != Some(&idx);
                if !keep {
                    k += 1;
                }
                idx += 1;
                keep
            });
        }
        if !batch.events.is_empty() || !batch.acks.is_empty() {
            out.emit(None, batch);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Origin, OriginInfo};

    fn cfg(toml_text: &str) -> ParseConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn run(c: &ParseConfig, lines: &[&str]) -> (Vec<Event>, Outcome) {
        let mut t = c.compile().unwrap();
        let info = OriginInfo::new("s", None);
        let events = lines
            .iter()
            .map(|l| {
                Event::from_line(
                    Bytes::copy_from_slice(l.as_bytes()),
                    Timestamp(0),
                    Origin { info: info.clone(), offset: 0 },
                )
            })
            .collect();
        let mut got = Vec::new();
        let o = t.process(Batch::new(events), &mut |_: Option<&str>, b: Batch| got.extend(b.events));
        (got, o)
    }

    fn s<'a>(e: &'a Event, k: &str) -> Option<&'a str> {
        e.fields.get(k).and_then(|v| v.as_str())
    }

    #[test]
    fn header_and_templates() {
        let c = cfg(r#"
format = "{timestamp} {level} [{logger}] [{trace_id}] {message}"
templates = [
  { event = "payment_failed", pattern = "Payment failed for user {user_id:int}: {error}" },
  { event = "health_check_ok", pattern = "health check ok" },
]
"#);
        let (ev, o) = run(
            &c,
            &[
                "2026-11-21 01:01:35,654 ERROR [payments.service] [6b4b] Payment failed for user 42: Card declined",
                "2026-11-21 01:02:35,620 INFO [payments.health] [-] health check ok",
                "2026-11-21 01:02:36,000 INFO [payments.x] [-] something unknown",
                "garbage line",
            ],
        );
        assert_eq!(o.errors, 1);
        assert_eq!(ev[0].timestamp.to_rfc3339(), "2026-11-21T01:01:35.654Z");
        assert_eq!(s(&ev[0], "level"), Some("error"));
        assert_eq!(s(&ev[0], "event"), Some("payment_failed"));
        assert_eq!(ev[0].fields.get("user_id"), Some(&Value::Int(42)));
        assert_eq!(s(&ev[0], "error"), Some("Card declined"));
        assert_eq!(s(&ev[0], "trace_id"), Some("6b4b"));
        assert_eq!(s(&ev[0], "template_id").unwrap().len(), 16);
        assert_eq!(ev[0].message(), "Payment failed for user 42: Card declined");
        assert_eq!(s(&ev[1], "event"), Some("health_check_ok"));
        assert!(ev[1].fields.get("trace_id").is_none());
        assert!(ev[2].fields.get("event").is_none());
        // Not dropped: raw text kept, marked.
        assert_eq!(ev[3].message(), "garbage line");
        assert!(s(&ev[3], "parse_error").unwrap().contains("expected"), "{:?}", ev[3].fields);
    }

    #[test]
    fn drop_on_error_and_json_message_templates() {
        let c = cfg("format = \"json\"\non_error = \"drop\"\ntemplates = [{ event = \"cart_updated\", pattern = \"cart updated\" }]\n");
        let (ev, o) = run(&c, &[r#"{"msg":"cart updated","level":"info","items":2}"#, r#"{"msg": trunc"#]);
        assert_eq!(o, Outcome { dropped: 1, reason: "parse_error", errors: 1 });
        assert_eq!(ev.len(), 1);
        assert_eq!(s(&ev[0], "event"), Some("cart_updated"));
        assert_eq!(ev[0].fields.get("items"), Some(&Value::Int(2)));
    }

    #[test]
    fn infer_level_and_bad_timestamp() {
        let c = cfg("format = \"{timestamp} gateway: {message}\"\ninfer_level = true\n");
        let (ev, _) = run(&c, &["2026/11/21 01:01:30.028562 gateway: retrying bank-gw", "later gateway: x"]);
        assert_eq!(s(&ev[0], "level"), Some("warn"));
        assert_eq!(s(&ev[1], "timestamp_raw"), Some("later"));
        assert_eq!(ev[1].timestamp, Timestamp(0));
    }

    #[test]
    fn multi_line_record_matches_first_line() {
        let c = cfg("format = \"{level} {message}\"\ntemplates = [{ event = \"publish_failed\", pattern = \"Failed to publish order {order_id}: {error}\" }]\n");
        let (ev, _) = run(&c, &["ERROR Failed to publish order ORD-1: Read timed out\njava.net.SocketTimeoutException: x\n\tat a.b(C.java:1)"]);
        assert_eq!(s(&ev[0], "event"), Some("publish_failed"));
        assert_eq!(s(&ev[0], "error"), Some("Read timed out"));
        assert_eq!(s(&ev[0], "stack_trace"), Some("java.net.SocketTimeoutException: x\n\tat a.b(C.java:1)"));
        assert!(ev[0].message().starts_with("Failed to publish order ORD-1: Read timed out\njava"));
    }

    #[test]
    fn mine_unknown_annotates_unmatched_messages() {
        let c = cfg("format = \"{level} {message}\"\ntemplates = [{ event = \"ok\", pattern = \"all good\" }]\nmine_unknown = true\nmine_masks = ['color-[a-z]+']");
        let (ev, _) = run(
            &c,
            &[
                "INFO all good",
                "WARN paint color-red failed after 3 tries",
                "WARN paint color-blue failed after 12 tries\n  at frame 1",
            ],
        );
        assert_eq!(s(&ev[0], "event"), Some("ok"));
        assert!(ev[0].fields.get("template").is_none());
        assert_eq!(s(&ev[1], "template"), Some("paint <*> failed after <*> tries"));
        assert_eq!(s(&ev[1], "template_id"), s(&ev[2], "template_id"), "same template, same id");
        let params = |e: &Event| match e.fields.get("params") {
            Some(Value::Array(v)) => v.iter().map(|x| x.as_str().unwrap().to_string()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(params(&ev[2]), ["color-blue", "12"], "the first line of a multi-line record");
        let e = cfg("mine_unknown = true\nmine_masks = ['(']").compile().err().unwrap();
        assert_eq!(e.key, "mine_masks");
    }

    #[test]
    fn config_errors_name_the_option() {
        let e = cfg("format = \"nope\"").compile().err().unwrap();
        assert_eq!(e.key, "format");
        assert!(e.message.contains("unknown format `nope`"));
        let e = cfg("templates = [{ event = \"x\", pattern = \"{a}{b}\" }]").compile().err().unwrap();
        assert_eq!(e.key, "templates");
        let e = cfg("templates_file = \"/nonexistent.toml\"").compile().err().unwrap();
        assert_eq!(e.key, "templates_file");
    }
}
