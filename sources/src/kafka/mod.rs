//! Source `kafka`: consume topics as a member of a consumer group, commit offsets only
//! after every sink has delivered.
//!
//! ```toml
//! [sources.app]
//! type = "kafka"
//! bootstrap_servers = "kafka-1:9092,kafka-2:9092"
//! topics = ["app-logs"]
//! group_id = "sluice"
//! auto_offset_reset = "earliest"       # where a group without committed offsets starts
//! librdkafka_options = { "security.protocol" = "ssl" }   # anything else librdkafka takes
//! ```
//! * One message is one event (parsed later like a line of a file); its payload is the
//!   raw bytes, its Kafka timestamp the event time. `kafka_topic`, `kafka_partition`,
//!   `kafka_offset`, `kafka_key` and `kafka_headers` are fields; a `traceparent` header
//!   (W3C) becomes `trace_id`, `span_id` and `trace_flags`. Payloads that are not UTF-8
//!   or hold NUL bytes are kept and marked like any line; a payload longer than
//!   `max_message_bytes` arrives in marked parts; an empty one is an empty event.
//! * Delivery ([`offsets`]): each batch carries one acknowledgement token per partition
//!   it holds. Per partition, offsets are committed up to the end of the contiguous
//!   prefix of batches every sink has acknowledged, never past a gap, every
//!   `commit_interval` and at shutdown. On a rebalance, what was delivered for the
//!   revoked partitions is committed synchronously before they go; batches still in
//!   flight for them are abandoned (their later acknowledgements are ignored), so the
//!   next owner reads them again: duplicates around a rebalance, never a loss.
//! * Scale-out: sluice instances with the same `group_id` share the partitions; the
//!   `sample` stage's decisions are a hash of the key, so identical in every instance.
//! * Metrics: `sluice_kafka_consumer_lag{component,topic,partition}` (from librdkafka's
//!   statistics every 5 s), `sluice_kafka_commits_total`, `sluice_kafka_rebalances_total`.
//!   While the pipeline holds the source back, it does not poll; librdkafka keeps the
//!   group membership alive in the background up to `max.poll.interval.ms` (5 minutes by
//!   default, a librdkafka option).

mod offsets;

use crate::{Source, SourceConfig, SourceContext};
use bytes::Bytes;
use offsets::Offsets;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Statistics};
use serde::Deserialize;
use sluice_config::units::{self, ByteSize};
use sluice_config::OptionError;
use sluice_event::{Batch, ByteStr, Event, Fields, Marks, Origin, OriginInfo, Timestamp, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a group without committed offsets starts reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The oldest message still in the topic.
    Earliest,
    /// Only messages produced from now on.
    #[default]
    Latest,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Brokers to contact first, comma-separated `host:port`.
    pub bootstrap_servers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// The consumer group: instances with the same group share the partitions.
    pub group_id: String,
    /// Where a group without committed offsets starts: `"earliest"` or `"latest"`.
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
    /// How often delivered offsets are committed (also at shutdown and on rebalance).
    #[serde(default = "default_commit_interval")]
    pub commit_interval: units::Duration,
    /// Longer payloads arrive in marked parts (`split_part`, `split_last`).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: ByteSize,
    /// Any other librdkafka consumer property (TLS, SASL, fetch sizes, …), as strings.
    /// Secrets belong in `${ENV}` references, never in the file.
    #[serde(default)]
    pub librdkafka_options: BTreeMap<String, String>,
}

fn default_commit_interval() -> units::Duration {
    units::Duration::from_secs(1)
}
fn default_max_message() -> ByteSize {
    ByteSize(1 << 20)
}

/// Options sluice sets itself: delivery depends on them.
const OWN_OPTIONS: [&str; 5] =
    ["enable.auto.commit", "enable.auto.offset.store", "group.id", "bootstrap.servers", "auto.offset.reset"];

impl SourceConfig for KafkaSourceConfig {
    fn build(&self) -> Result<Box<dyn Source>, OptionError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(OptionError::new("bootstrap_servers", "must name at least one broker (host:port)"));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.is_empty()) {
            return Err(OptionError::new("topics", "must list at least one topic, none empty"));
        }
        if self.group_id.is_empty() {
            return Err(OptionError::new("group_id", "must not be empty"));
        }
        if self.max_message_bytes.bytes() < 16 {
            return Err(OptionError::new("max_message_bytes", "must be at least 16"));
        }
        if let Some(k) = self.librdkafka_options.keys().find(|k| OWN_OPTIONS.contains(&k.as_str())) {
            return Err(OptionError::new(
                format!("librdkafka_options.{k}"),
                "is set by sluice (offsets are committed only after delivery); use the source's own options",
            ));
        }
        // Let librdkafka check the options now (no connection is made until subscribe).
        let _: BaseConsumer =
            self.client_config().create().map_err(|e| OptionError::new("librdkafka_options", e.to_string()))?;
        Ok(Box::new(KafkaSource { cfg: self.clone() }))
    }
}

impl KafkaSourceConfig {
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.auto_offset_reset {
                    OffsetReset::Earliest => "earliest",
                    OffsetReset::Latest => "latest",
                },
            )
            .set("statistics.interval.ms", "5000")
            .set("log_level", "4");
        for (k, v) in &self.librdkafka_options {
            c.set(k, v);
        }
        c
    }
}

struct KafkaSource {
    cfg: KafkaSourceConfig,
}

/// librdkafka's callbacks: rebalances (commit what was delivered before partitions go)
/// and statistics (consumer lag).
struct Callbacks {
    name: String,
    offsets: Arc<Mutex<Offsets>>,
    rebalances: metrics::Counter,
}

impl ClientContext for Callbacks {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p < 0 || part.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!("sluice_kafka_consumer_lag", "component" => self.name.clone(), "topic" => topic.clone(), "partition" => p.to_string())
                    .set(part.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for Callbacks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.increment(1);
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut o = self.offsets.lock().unwrap();
            o.apply_acks();
            let revoked: Vec<(String, i32)> =
                tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
            if let Some(list) = o.to_commit(Some(&revoked)) {
                match consumer.commit(&list, rdkafka::consumer::CommitMode::Sync) {
                    Ok(()) => o.committed(&list),
                    Err(e) => {
                        tracing::warn!(source = %self.name, error = %e, "commit before a rebalance failed; the next owner re-reads")
                    }
                }
            }
            o.forget(&revoked);
            tracing::info!(source = %self.name, partitions = revoked.len(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(source = %self.name, partitions = tpl.count(), "partitions assigned");
        }
    }
}

impl Source for KafkaSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> anyhow::Result<()> {
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        let labels = [("component", ctx.name.clone())];
        let offsets = Arc::new(Mutex::new(Offsets::new(ack_tx, ack_rx)));
        let callbacks = Callbacks {
            name: ctx.name.clone(),
            offsets: offsets.clone(),
            rebalances: metrics::counter!("sluice_kafka_rebalances_total", &labels),
        };
        let commits = metrics::counter!("sluice_kafka_commits_total", &labels);
        let consumer: BaseConsumer<Callbacks> = self
            .cfg
            .client_config()
            .create_with_context(callbacks)
            .map_err(|e| anyhow::anyhow!("kafka source `{}`: {e}", ctx.name))?;
        let topics: Vec<&str> = self.cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| anyhow::anyhow!("kafka source `{}`: subscribe: {e}", ctx.name))?;
        tracing::info!(source = %ctx.name, topics = ?self.cfg.topics, group = %self.cfg.group_id, "kafka consumer started");
        ctx.stats.set_started();
        let origin = OriginInfo::new(&ctx.name, None);
        let max_message = self.cfg.max_message_bytes.as_usize();
        let commit_every = *self.cfg.commit_interval;
        let mut last_commit = Instant::now();
        let mut topic_names: Vec<(String, ByteStr)> = Vec::new();

        let commit = |consumer: &BaseConsumer<Callbacks>, mode| {
            let mut o = offsets.lock().unwrap();
            o.apply_acks();
            if ctx.abort.load(Ordering::Acquire) {
                return;
            }
            if let Some(list) = o.to_commit(None) {
                match consumer.commit(&list, mode) {
                    Ok(()) => {
                        o.committed(&list);
                        commits.increment(1);
                    }
                    Err(e) => tracing::warn!(source = %ctx.name, error = %e, "offset commit failed; retrying later"),
                }
            }
        };

        while !ctx.stopping() {
            if last_commit.elapsed() >= commit_every {
                commit(&consumer, rdkafka::consumer::CommitMode::Async);
                last_commit = Instant::now();
            }
            let mut events: Vec<Event> = Vec::new();
            let mut bytes = 0usize;
            // (stream key, offset after the partition's last message in this batch)
            let mut ends: Vec<(u64, u64)> = Vec::new();
            let mut wait = Duration::from_millis(100);
            while events.len() < ctx.limits.max_events && bytes < ctx.limits.max_bytes {
                let Some(r) = consumer.poll(wait) else { break };
                wait = Duration::ZERO;
                let m = match r {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(source = %ctx.name, error = %e, "kafka consumer error");
                        break;
                    }
                };
                let key = offsets.lock().unwrap().stream_key(m.topic(), m.partition());
                match ends.iter_mut().find(|(k, _)| *k == key) {
                    Some(end) => end.1 = m.offset() as u64 + 1,
                    None => ends.push((key, m.offset() as u64 + 1)),
                }
                let topic = topic_name(&mut topic_names, m.topic());
                bytes += m.payload_len();
                message_events(&m, topic, &origin, max_message, &mut events);
            }
            if ends.is_empty() {
                continue;
            }
            let acks = {
                let mut o = offsets.lock().unwrap();
                ends.iter().filter_map(|&(key, end)| o.emit(key, end)).collect()
            };
            let n = events.len() as u64;
            ctx.stats.events_in(n, bytes as u64);
            let batch = Batch { events, acks };
            let sent = ctx.out.send_blocking_with(&ctx.rt, batch, Duration::from_millis(200), || {
                if last_commit.elapsed() >= commit_every {
                    commit(&consumer, rdkafka::consumer::CommitMode::Async);
                    last_commit = Instant::now();
                }
            });
            if !sent {
                break;
            }
            ctx.stats.events_out(n);
        }
        // Downstream drains; commit what it delivers until every sink has finished, then
        // leave the group (the partitions move to the other members at once).
        let SourceContext { out, checkpoint_done, abort, name, aux, .. } = ctx;
        drop(out);
        if let Ok(assigned) = consumer.assignment() {
            let _ = consumer.pause(&assigned);
        }
        let handle = std::thread::Builder::new().name(format!("commit-{name}")).spawn(move || {
            while !checkpoint_done.load(Ordering::Acquire) {
                let _ = consumer.poll(Duration::from_millis(50));
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut o = offsets.lock().unwrap();
            o.apply_acks();
            if !abort.load(Ordering::Acquire) {
                if let Some(list) = o.to_commit(None) {
                    match consumer.commit(&list, rdkafka::consumer::CommitMode::Sync) {
                        Ok(()) => o.committed(&list),
                        Err(e) => tracing::error!(source = %name, error = %e, "final offset commit failed; the next start re-reads"),
                    }
                }
            }
            drop(o);
            consumer.unsubscribe();
            tracing::info!(source = %name, "kafka consumer closed");
        })?;
        aux.lock().unwrap().push(handle);
        Ok(())
    }
}

fn topic_name<'a>(names: &'a mut Vec<(String, ByteStr)>, topic: &str) -> &'a ByteStr {
    let i = match names.iter().position(|(t, _)| t == topic) {
        Some(i) => i,
        None => {
            names.push((topic.to_string(), ByteStr::from(topic.to_string())));
            names.len() - 1
        }
    };
    &names[i].1
}

/// The event (or marked parts) of one message.
fn message_events<M: Message>(m: &M, topic: &ByteStr, origin: &Arc<OriginInfo>, max: usize, out: &mut Vec<Event>) {
    let payload = m.payload().unwrap_or(&[]);
    let ts = m.timestamp().to_millis().map_or_else(Timestamp::now, |ms| Timestamp(ms.saturating_mul(1_000_000)));
    let offset = m.offset().max(0) as u64;
    let mut fields = Fields::default();
    fields.insert("kafka_topic", Value::Str(topic.clone()));
    fields.insert("kafka_partition", Value::Int(m.partition() as i64));
    fields.insert("kafka_offset", Value::Int(m.offset()));
    if let Some(k) = m.key() {
        fields.insert("kafka_key", Value::Str(ByteStr::from(String::from_utf8_lossy(k).into_owned())));
    }
    if let Some(h) = m.headers() {
        let mut map = Fields::default();
        for header in h.iter() {
            let value = header.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            if header.key.eq_ignore_ascii_case("traceparent") {
                trace_context(&value, &mut fields);
            }
            map.insert(header.key, Value::Str(ByteStr::from(value)));
        }
        fields.insert("kafka_headers", Value::Map(map));
    }
    if payload.len() <= max {
        let mut e = Event::from_line(Bytes::copy_from_slice(payload), ts, Origin { info: origin.clone(), offset });
        e.fields = fields;
        out.push(e);
        return;
    }
    // Over-long: parts cut at UTF-8 boundaries, marked, each with the message's fields.
    let mut start = 0;
    let mut part = 0u32;
    while start < payload.len() {
        let mut end = (start + max).min(payload.len());
        if end < payload.len() {
            let mut cut = end;
            while cut > start && (payload[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            if cut > start {
                end = cut;
            }
        }
        let mut e =
            Event::from_line(Bytes::copy_from_slice(&payload[start..end]), ts, Origin { info: origin.clone(), offset });
        e.marks.set(Marks::SPLIT);
        if end == payload.len() {
            e.marks.set(Marks::SPLIT_LAST);
        }
        e.marks.split_part = part + 1;
        e.fields = fields.clone();
        out.push(e);
        part += 1;
        start = end;
    }
}

/// A W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`) as `trace_id`, `span_id`,
/// `trace_flags`; anything else is ignored (it stays in `kafka_headers`).
fn trace_context(v: &str, fields: &mut Fields) {
    let parts: Vec<&str> = v.trim().split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if parts.len() == 4 && hex(parts[0], 2) && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2) {
        fields.insert("trace_id", Value::Str(ByteStr::from(parts[1].to_ascii_lowercase())));
        fields.insert("span_id", Value::Str(ByteStr::from(parts[2].to_ascii_lowercase())));
        fields.insert("trace_flags", Value::Str(ByteStr::from(parts[3].to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_header_becomes_trace_context() {
        let mut f = Fields::default();
        trace_context("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", &mut f);
        assert_eq!(f.get("trace_id").unwrap().as_str(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(f.get("span_id").unwrap().as_str(), Some("00f067aa0ba902b7"));
        let mut g = Fields::default();
        trace_context("00-xyz-1-01", &mut g);
        assert!(g.get("trace_id").is_none());
    }

    #[test]
    fn options_sluice_owns_are_refused_and_bad_ones_reported() {
        let cfg = |extra: &str| -> KafkaSourceConfig {
            toml::from_str(&format!("bootstrap_servers = \"127.0.0.1:9\"\ntopics = [\"t\"]\ngroup_id = \"g\"\n{extra}"))
                .unwrap()
        };
        let e = cfg("librdkafka_options = { \"enable.auto.commit\" = \"true\" }").build().err().unwrap();
        assert_eq!(e.key, "librdkafka_options.enable.auto.commit");
        let e = cfg("librdkafka_options = { \"no.such.option\" = \"1\" }").build().err().unwrap();
        assert!(e.message.contains("no.such.option"), "{}", e.message);
        assert!(cfg("").build().is_ok());
    }
}
