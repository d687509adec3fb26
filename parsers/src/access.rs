//! Web server access logs: nginx `combined`, Apache `common` and `combined`.
//!
//! `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
//! "$http_referer" "$http_user_agent"`; the request line is split into `method`, `path`
//! and `protocol`. A trailing number (nginx's `$request_time`, often appended) becomes
//! `request_time`; other trailing text becomes `extra`. `-` means absent.

use crate::timestamp::{self, Context};
use crate::{ParseError, Parsed};
use sluice_event::{ByteStr, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    NginxCombined,
    ApacheCommon,
    ApacheCombined,
}

struct Cur<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cur<'a> {
    fn word(&mut self) -> Option<&'a str> {
        let rest = &self.s[self.pos..];
        let rest_trim = rest.trim_start_matches(' ');
        self.pos += rest.len() - rest_trim.len();
        if rest_trim.is_empty() {
            return None;
        }
        let n = rest_trim.find(' ').unwrap_or(rest_trim.len());
        self.pos += n;
        Some(&rest_trim[..n])
    }
    fn delimited(&mut self, open: u8, close: u8) -> Option<&'a str> {
        let rest = &self.s[self.pos..];
        let rest_trim = rest.trim_start_matches(' ');
        self.pos += rest.len() - rest_trim.len();
        let b = rest_trim.as_bytes();
        if b.first() != Some(&open) {
            return None;
        }
        let mut i = 1;
        while i < b.len() {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == close {
                self.pos += i + 1;
                return Some(&rest_trim[1..i]);
            }
            i += 1;
        }
        None
    }
    fn rest(&self) -> &'a str {
        self.s[self.pos..].trim()
    }
}

fn put(out: &mut Parsed, line: &ByteStr, key: &'static str, v: &str) {
    if !v.is_empty() && v != "-" {
        out.fields.insert(key, Value::Str(line.slice_str(v)));
    }
}

fn put_int(out: &mut Parsed, line: &ByteStr, key: &'static str, v: &str) {
    match v.parse::<i64>() {
        Ok(n) => out.fields.insert(key, Value::Int(n)),
        Err(_) => put(out, line, key, v),
    }
}

pub fn parse(flavor: Flavor, line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
    let s = line.as_str();
    let mut c = Cur { s, pos: 0 };
    let err = |what: &str| ParseError::new(format!("access log: expected {what}"));
    let addr = c.word().ok_or_else(|| err("the client address"))?;
    let ident = c.word().ok_or_else(|| err("the ident field"))?;
    let user = c.word().ok_or_else(|| err("the user field"))?;
    let time = c.delimited(b'[', b']').ok_or_else(|| err("[time]"))?;
    let request = c.delimited(b'"', b'"').ok_or_else(|| err("\"request\""))?;
    let status = c.word().ok_or_else(|| err("the status code"))?;
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("a 3-digit status code"));
    }
    let bytes = c.word().ok_or_else(|| err("the response size"))?;
    put(out, line, "remote_addr", addr);
    if flavor != Flavor::NginxCombined {
        put(out, line, "ident", ident);
    }
    put(out, line, "remote_user", user);
    match timestamp::parse_exact(time, ctx) {
        Some(t) => out.timestamp = Some(t),
        None => out.bad_timestamp = Some(line.slice_str(time)),
    }
    let mut parts = request.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), proto) if m.bytes().all(|b| b.is_ascii_uppercase()) && !m.is_empty() => {
            put(out, line, "method", m);
            put(out, line, "path", p);
            if let Some(pr) = proto {
                put(out, line, "protocol", pr);
            }
        }
        _ => put(out, line, "request", request),
    }
    put_int(out, line, "status", status);
    put_int(out, line, "body_bytes_sent", bytes);
    if flavor != Flavor::ApacheCommon {
        if let Some(r) = c.delimited(b'"', b'"') {
            put(out, line, "http_referer", r);
            let ua = c.delimited(b'"', b'"').ok_or_else(|| err("\"user agent\""))?;
            put(out, line, "http_user_agent", ua);
        } else if flavor == Flavor::ApacheCombined || flavor == Flavor::NginxCombined {
            return Err(err("\"referer\""));
        }
    }
    let extra = c.rest();
    if !extra.is_empty() {
        match extra.parse::<f64>() {
            Ok(f) if f.is_finite() && !extra.contains(' ') => out.fields.insert("request_time", Value::Float(f)),
            _ => put(out, line, "extra", extra),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: Flavor, s: &str) -> Result<Parsed, ParseError> {
        let mut p = Parsed::default();
        parse(f, &ByteStr::from(s), &Context::default(), &mut p).map(|_| p)
    }

    #[test]
    fn nginx_combined_with_request_time() {
        let p = run(
            Flavor::NginxCombined,
            r#"192.251.8.41 - - [21/Nov/2026:01:02:28 +0000] "POST /api/orders?email=a%40b.c HTTP/1.1" 201 1952 "-" "curl/8.5.0" 0.623"#,
        )
        .unwrap();
        assert_eq!(p.fields.get("remote_addr").unwrap().as_str(), Some("192.251.8.41"));
        assert!(p.fields.get("remote_user").is_none());
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T01:02:28Z");
        assert_eq!(p.fields.get("method").unwrap().as_str(), Some("POST"));
        assert_eq!(p.fields.get("path").unwrap().as_str(), Some("/api/orders?email=a%40b.c"));
        assert_eq!(p.fields.get("status"), Some(&Value::Int(201)));
        assert_eq!(p.fields.get("body_bytes_sent"), Some(&Value::Int(1952)));
        assert!(p.fields.get("http_referer").is_none());
        assert_eq!(p.fields.get("http_user_agent").unwrap().as_str(), Some("curl/8.5.0"));
        assert_eq!(p.fields.get("request_time"), Some(&Value::Float(0.623)));
    }

    #[test]
    fn apache_common() {
        let p = run(
            Flavor::ApacheCommon,
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
        )
        .unwrap();
        assert_eq!(p.fields.get("remote_user").unwrap().as_str(), Some("frank"));
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2000-10-10T20:55:36Z");
        assert!(run(
            Flavor::ApacheCombined,
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326"#
        )
        .is_err());
        assert!(run(Flavor::ApacheCommon, r#"127.0.0.1 - - [x] "GET / HTTP/1.0" 2000 1"#).is_err());
        assert!(run(Flavor::ApacheCommon, "").is_err());
    }
}
