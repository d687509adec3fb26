use super::*;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use sluice_event::{Event, Origin, OriginInfo, Timestamp, Value};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn config(extra: &str) -> S3SinkConfig {
    toml::from_str(&format!("bucket = \"b\"\n{extra}")).unwrap()
}

fn ctx() -> SinkContext {
    SinkContext { name: "s3".into(), data_dir: std::env::temp_dir() }
}

fn event(service: &str, n: u64, secs: i64) -> Event {
    let origin = Origin { info: OriginInfo::new("app", None), offset: n };
    let mut e = Event::from_line(format!("line {n} of {service}").into(), Timestamp::from_secs(secs), origin);
    e.fields.insert("service", Value::from(service));
    e
}

fn objects(store: &InMemory) -> Vec<(String, Vec<u8>)> {
    block_on(async {
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut keys: Vec<Path> = metas.into_iter().map(|m| m.location).collect();
        keys.sort();
        let mut out = Vec::new();
        for k in keys {
            let b = store.get(&k).await.unwrap().bytes().await.unwrap();
            out.push((k.to_string(), b.to_vec()));
        }
        out
    })
}

fn lines(data: &[u8], c: Compression) -> Vec<serde_json::Value> {
    let raw = match c {
        Compression::Zstd => zstd::decode_all(data).unwrap(),
        Compression::Gzip => {
            use std::io::Read;
            let mut v = Vec::new();
            flate2::read::GzDecoder::new(data).read_to_end(&mut v).unwrap();
            v
        }
        Compression::None => data.to_vec(),
    };
    raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
}

#[test]
fn partitions_by_field_and_hour_in_order_and_acknowledges_after_completion() {
    let store = Arc::new(InMemory::new());
    let cfg = config("key_template = \"logs/{service}/{date}/{hour}/{instance}-{seq}.ndjson.zst\"");
    let mut sink = cfg.build_with_store(&ctx(), store.clone()).unwrap();
    let instance = sink.instance().to_string();
    // 2026-11-30 03:59:59 and 04:00:00.
    let (h3, h4) = (1_796_011_199, 1_796_011_200);
    for b in 0..4u64 {
        let events: Vec<Event> = (0..50)
            .map(|i| {
                let n = b * 50 + i;
                let service = if n % 3 == 0 { "payments" } else { "orders" };
                event(service, n, if b < 2 { h3 } else { h4 })
            })
            .collect();
        sink.write(&Batch::new(events)).unwrap();
        sink.flush().unwrap();
        // Nothing is complete before the objects close: nothing is acknowledged.
        assert_eq!(sink.durable_batches(), Some(0));
    }
    assert!(objects(&store).is_empty());
    sink.finish().unwrap();
    assert_eq!(sink.durable_batches(), Some(4));
    let objs = objects(&store);
    let keys: Vec<&str> = objs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("logs/orders/2026-11-30/03/{instance}-00000002.ndjson.zst"),
            format!("logs/orders/2026-11-30/04/{instance}-00000003.ndjson.zst"),
            format!("logs/payments/2026-11-30/03/{instance}-00000001.ndjson.zst"),
            format!("logs/payments/2026-11-30/04/{instance}-00000004.ndjson.zst"),
        ]
    );
    let mut seen = 0;
    for (key, data) in &objs {
        let service = if key.contains("/orders/") { "orders" } else { "payments" };
        let offsets: Vec<u64> = lines(data, Compression::Zstd)
            .iter()
            .map(|l| {
                assert_eq!(l["service"], service, "{key}");
                assert_eq!(l["message"], format!("line {} of {service}", l["offset"]));
                l["offset"].as_u64().unwrap()
            })
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{key}: not in order: {offsets:?}");
        seen += offsets.len();
    }
    assert_eq!(seen, 200);
}

#[test]
fn objects_close_on_size_and_age_and_later_batches_wait_for_earlier_objects() {
    let store = Arc::new(InMemory::new());
    let cfg = config("key_template = \"{service}/{instance}-{seq}.ndjson\"\ncompression = \"none\"\nmax_bytes = \"4KiB\"\nmax_age = \"200ms\"");
    let mut sink = cfg.build_with_store(&ctx(), store.clone()).unwrap();
    // Batch 0: a quiet partition; batches 1..: a busy one that fills objects.
    sink.write(&Batch::new(vec![event("quiet", 0, 0)])).unwrap();
    for b in 1..=6u64 {
        sink.write(&Batch::new((0..20).map(|i| event("busy", b * 100 + i, 0)).collect())).unwrap();
        if sink.wants_flush() {
            sink.flush().unwrap();
        }
    }
    let busy = objects(&store).len();
    assert!(busy >= 2, "busy objects closed on size: {busy}");
    // The quiet object holds batch 0 back: no batch is acknowledged before it completes.
    assert_eq!(sink.durable_batches(), Some(0));
    let due = sink.next_due().unwrap();
    assert!(due <= Duration::from_millis(200));
    std::thread::sleep(due + Duration::from_millis(20));
    assert!(sink.wants_flush());
    sink.flush().unwrap();
    assert_eq!(sink.durable_batches(), Some(7), "every object reached its age and completed");
    let objs = objects(&store);
    let quiet: Vec<_> = objs.iter().filter(|(k, _)| k.starts_with("quiet/")).collect();
    assert_eq!(quiet.len(), 1);
    let total: usize = objs.iter().map(|(_, d)| lines(d, Compression::None).len()).sum();
    assert_eq!(total, 1 + 6 * 20);
    for (k, d) in &objs {
        assert!(d.len() <= 4096 + 2048, "{k}: {} bytes, max_bytes plus at most one batch", d.len());
    }
}

#[test]
fn large_objects_use_multipart_and_read_back_whole() {
    let store = Arc::new(InMemory::new());
    let cfg = config("key_template = \"{instance}-{seq}.ndjson.gz\"\ncompression = \"gzip\"\ncompression_level = 0\npart_size = \"5MiB\"");
    let mut sink = cfg.build_with_store(&ctx(), store.clone()).unwrap();
    let big = "x".repeat(1000);
    let mut n = 0u64;
    for _ in 0..14 {
        let events: Vec<Event> = (0..1000)
            .map(|_| {
                n += 1;
                let mut e = event("s", n, 0);
                e.fields.insert("pad", Value::from(big.as_str()));
                e
            })
            .collect();
        sink.write(&Batch::new(events)).unwrap();
        if sink.wants_flush() {
            sink.flush().unwrap();
        }
        // Parts go out while the object fills; it is not visible before completion.
        assert!(objects(&store).is_empty());
    }
    sink.finish().unwrap();
    let objs = objects(&store);
    assert_eq!(objs.len(), 1);
    assert!(objs[0].1.len() > 10 * 1024 * 1024, "{} bytes", objs[0].1.len());
    let got = lines(&objs[0].1, Compression::Gzip);
    assert_eq!(got.len(), 14_000);
    assert!(got.iter().enumerate().all(|(i, l)| l["offset"] == i as u64 + 1));
}

#[test]
fn config_errors_name_the_option() {
    let check = |extra: &str| match config(extra).build(&ctx()) {
        Ok(_) => panic!("accepted: {extra}"),
        Err(e) => (e.key, e.message),
    };
    assert_eq!(check("key_template = \"logs/{date}/{seq}.ndjson.zst\"").0, "key_template");
    assert_eq!(check("key_template = \"logs/{instance}-{seq}.ndjson.gz\"").0, "key_template");
    assert_eq!(check("compression = \"gzip\"\ncompression_level = 12").0, "compression_level");
    assert_eq!(check("part_size = \"1MiB\"").0, "part_size");
    assert_eq!(check("endpoint = \"localhost:9000\"").0, "endpoint");
    assert!(toml::from_str::<S3SinkConfig>("bucket = \"b\"\naccess_key = \"x\"").is_err());
    // Defaults: the key's extension follows the compression.
    assert!(config("compression = \"gzip\"").build(&ctx()).is_ok());
    assert_eq!(config("compression = \"none\"").template_text(), "logs/{date}/{hour}/{instance}-{seq}.ndjson");
    let exposed = config("key_template = \"{host}/{service}/{instance}{seq}.ndjson.zst\"").exposed_fields();
    assert_eq!(
        exposed.iter().map(|e| (e.option.as_str(), e.field.as_str())).collect::<Vec<_>>(),
        [("key_template", "host"), ("key_template", "service")]
    );
}
