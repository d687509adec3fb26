//! Loki's push format (`logproto.PushRequest`), written here with the field numbers and
//! types of Loki's published schema (`pkg/push/push.proto`), for prost:
//!
//! ```proto
//! message PushRequest  { repeated StreamAdapter streams = 1; }
//! message StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! message EntryAdapter  { google.protobuf.Timestamp timestamp = 1; string line = 2;
//!                         repeated LabelPairAdapter structuredMetadata = 3; }
//! message LabelPairAdapter { string name = 1; string value = 2; }
//! message Timestamp     { int64 seconds = 1; int32 nanos = 2; }   // google.protobuf
//! ```
//! The request body is the encoded `PushRequest`, snappy-compressed in the block format
//! (not the framed one), sent with `Content-Type: application/x-protobuf`.

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set in LogQL form: `{service="payments", level="error"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Decode a request body (snappy block + protobuf), as a Loki receiver does.
pub fn decode(body: &[u8]) -> Result<PushRequest, String> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| format!("snappy: {e}"))?;
    prost::Message::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// Encode a request body (protobuf + snappy block).
pub fn encode(req: &PushRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    snap::raw::Encoder::new().compress_vec(&raw).expect("snappy compression of an in-memory buffer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_field_numbers() {
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: "{service=\"payments\"}".into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp { seconds: 1_700_000_000, nanos: 5 }),
                    line: "hello".into(),
                    structured_metadata: vec![LabelPairAdapter { name: "trace_id".into(), value: "abc".into() }],
                }],
                hash: 0,
            }],
        };
        assert_eq!(decode(&encode(&req)).unwrap(), req);
        // The wire bytes follow the schema: field 1 (streams) is length-delimited (0x0a),
        // inside it field 1 (labels) is a string (0x0a) and field 2 (entries) 0x12.
        let raw = prost::Message::encode_to_vec(&req);
        assert_eq!(raw[0], 0x0a);
        let labels_len = raw[3] as usize;
        assert_eq!(raw[2], 0x0a);
        assert_eq!(&raw[4..4 + labels_len], b"{service=\"payments\"}");
        assert_eq!(raw[4 + labels_len], 0x12);
    }
}
