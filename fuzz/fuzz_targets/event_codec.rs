//! The disk buffer's event encoding: any bytes decode to events or to an error, never a
//! panic; whatever decodes encodes to bytes that decode to the same events (compared by
//! their encoding, so that NaN equals itself). Each event's NDJSON line is one JSON
//! object whose `message` is the event's message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_event::codec::{encode, Decoder};
use sluice_event::Event;

fn decode_all(data: bytes::Bytes) -> Vec<Event> {
    let mut d = Decoder::new(data);
    let mut events = Vec::new();
    while !d.is_empty() {
        match d.event() {
            Ok(e) => events.push(e),
            Err(_) => break,
        }
    }
    events
}

fn encode_all(events: &[Event]) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in events {
        encode(e, &mut buf);
    }
    buf
}

fuzz_target!(|data: &[u8]| {
    let events = decode_all(bytes::Bytes::copy_from_slice(data));
    let once = encode_all(&events);
    let again = decode_all(bytes::Bytes::from(once.clone()));
    assert_eq!(again.len(), events.len(), "every re-encoded event decodes");
    for (a, b) in events.iter().zip(&again) {
        assert_eq!(a.message(), b.message());
        assert_eq!(a.origin.info.json_members(), b.origin.info.json_members());
    }
    assert_eq!(encode_all(&again), once);
    let mut line = Vec::new();
    for e in &events {
        line.clear();
        sluice_event::ndjson::encode_event(&mut line, e);
        assert_eq!(line.pop(), Some(b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).expect("the NDJSON line is JSON");
        assert_eq!(v["message"].as_str(), Some(e.message()), "{}", String::from_utf8_lossy(&line));
    }
});
