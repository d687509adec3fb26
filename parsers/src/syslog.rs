//! syslog: RFC 3164 (`<PRI>Mmm dd hh:mm:ss host tag[pid]: msg`, PRI optional, year
//! inferred) and RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD…] MSG`, structured
//! data → the `structured_data` map field). Facility → `facility`, severity → level.

use crate::timestamp::{self, Context};
use crate::{Level, ParseError, Parsed};
use nom::bytes::complete::{escaped_transform, tag, take_while1};
use nom::character::complete::{char, none_of};
use nom::combinator::{map, opt, value};
use nom::multi::many0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};
use sluice_event::{ByteStr, Fields, Value};

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

fn pri(s: &str) -> Option<(u8, usize)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return None;
    }
    let end = b.iter().take(5).position(|&c| c == b'>')?;
    let v: u16 = s[1..end].parse().ok()?;
    (v <= 191 && end > 1).then_some((v as u8, end + 1))
}

pub fn parse(line: &ByteStr, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
    let s = line.as_str();
    let mut rest = s;
    if let Some((p, n)) = pri(s) {
        out.fields.insert("facility", Value::Str(ByteStr::from_static(FACILITIES[(p >> 3) as usize])));
        out.level = Some(Level::from_syslog_severity(p & 7));
        rest = &s[n..];
        if let Some(r) = rest.strip_prefix("1 ") {
            return rfc5424(line, r, ctx, out);
        }
    }
    rfc3164(line, rest, ctx, out)
}

fn token(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn rfc3164(line: &ByteStr, s: &str, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
    let (ts, n) = timestamp::parse_prefix(s, ctx).ok_or_else(|| ParseError::new("syslog: missing timestamp"))?;
    out.timestamp = Some(ts);
    let rest = s[n..].trim_start_matches(' ');
    let (host, rest) = token(rest);
    if host.is_empty() {
        return Err(ParseError::new("syslog: missing host name"));
    }
    out.fields.insert("host", Value::Str(line.slice_str(host)));
    let (tag_tok, after) = token(rest);
    let msg = if let Some(t) = tag_tok.strip_suffix(':') {
        let (app, pid) = match t.find('[') {
            Some(i) if t.ends_with(']') => (&t[..i], Some(&t[i + 1..t.len() - 1])),
            _ => (t, None),
        };
        if !app.is_empty() {
            out.fields.insert("appname", Value::Str(line.slice_str(app)));
        }
        if let Some(p) = pid.filter(|p| !p.is_empty()) {
            out.fields.insert("procid", Value::Str(line.slice_str(p)));
        }
        after
    } else {
        rest
    };
    out.message = Some(line.slice_str(msg));
    Ok(())
}

fn nil_or(line: &ByteStr, out: &mut Parsed, key: &'static str, v: &str) {
    if v != "-" && !v.is_empty() {
        out.fields.insert(key, Value::Str(line.slice_str(v)));
    }
}

fn rfc5424(line: &ByteStr, s: &str, ctx: &Context, out: &mut Parsed) -> Result<(), ParseError> {
    let (ts, rest) = token(s);
    if ts != "-" {
        match timestamp::parse_exact(ts, ctx) {
            Some(t) => out.timestamp = Some(t),
            None => out.bad_timestamp = Some(line.slice_str(ts)),
        }
    }
    let (host, rest) = token(rest);
    let (app, rest) = token(rest);
    let (procid, rest) = token(rest);
    let (msgid, rest) = token(rest);
    if msgid.is_empty() {
        return Err(ParseError::new("syslog: RFC 5424 header is incomplete"));
    }
    nil_or(line, out, "host", host);
    nil_or(line, out, "appname", app);
    nil_or(line, out, "procid", procid);
    nil_or(line, out, "msgid", msgid);
    let msg = if let Some(r) = rest.strip_prefix('-') {
        r
    } else if rest.starts_with('[') {
        let (r, elements) = structured_data(rest).map_err(|_| ParseError::new("syslog: malformed structured data"))?;
        let mut sd = Fields::new();
        for (id, params) in elements {
            let mut p = Fields::new();
            for (k, v) in params {
                p.insert(k, Value::Str(v.into()));
            }
            sd.insert(id, Value::Map(p));
        }
        out.fields.insert("structured_data", Value::Map(sd));
        r
    } else {
        return Err(ParseError::new("syslog: expected structured data or `-`"));
    };
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    out.message = Some(line.slice_str(msg));
    Ok(())
}

type Element<'a> = (&'a str, Vec<(&'a str, String)>);

fn sd_name(i: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c != '=' && c != ' ' && c != ']' && c != '"' && !c.is_control())(i)
}

fn param_value(i: &str) -> IResult<&str, String> {
    delimited(
        char('"'),
        map(
            opt(escaped_transform(
                none_of("\\\""),
                '\\',
                nom::branch::alt((value("\\", tag("\\")), value("\"", tag("\"")), value("]", tag("]")))),
            )),
            Option::unwrap_or_default,
        ),
        char('"'),
    )
    .parse(i)
}

fn element(i: &str) -> IResult<&str, Element<'_>> {
    let (i, _) = char('[')(i)?;
    let (i, id) = sd_name(i)?;
    let (i, params) = many0(preceded(char(' '), (sd_name, preceded(char('='), param_value)))).parse(i)?;
    let (i, _) = char(']')(i)?;
    Ok((i, (id, params)))
}

fn structured_data(i: &str) -> IResult<&str, Vec<Element<'_>>> {
    let (i, first) = element(i)?;
    let (i, mut more) = many0(element).parse(i)?;
    more.insert(0, first);
    Ok((i, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context { now: sluice_event::Timestamp::from_secs(1_795_320_000) }
    }

    fn run(s: &str) -> Result<Parsed, ParseError> {
        let mut p = Parsed::default();
        parse(&ByteStr::from(s), &ctx(), &mut p).map(|_| p)
    }

    #[test]
    fn rfc3164_lines() {
        let p = run(
            "<86>Nov 21 01:16:20 auth-2 sshd[684]: Accepted publickey for fatima from 203.0.113.161 port 50015 ssh2",
        )
        .unwrap();
        assert_eq!(p.timestamp.unwrap().to_rfc3339(), "2026-11-21T01:16:20Z");
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(p.fields.get("facility").unwrap().as_str(), Some("authpriv"));
        assert_eq!(p.fields.get("host").unwrap().as_str(), Some("auth-2"));
        assert_eq!(p.fields.get("appname").unwrap().as_str(), Some("sshd"));
        assert_eq!(p.fields.get("procid").unwrap().as_str(), Some("684"));
        assert_eq!(p.message.unwrap().as_str(), "Accepted publickey for fatima from 203.0.113.161 port 50015 ssh2");
        // Without PRI, with padded day.
        let p = run("Nov  2 01:16:20 host cron: job done").unwrap();
        assert!(p.level.is_none());
        assert_eq!(p.message.unwrap().as_str(), "job done");
    }

    #[test]
    fn rfc5424_lines() {
        let p = run("<84>1 2026-11-21T01:02:03.456Z auth-1 sshd 2211 - - Failed password for invalid user root from 203.0.113.9 port 22 ssh2").unwrap();
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.fields.get("procid").unwrap().as_str(), Some("2211"));
        assert!(p.fields.get("msgid").is_none());
        assert_eq!(p.message.unwrap().as_str(), "Failed password for invalid user root from 203.0.113.9 port 22 ssh2");
        let p = run(r#"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appli\"cation"][x@1 a="b"] An application event"#).unwrap();
        let Some(Value::Map(sd)) = p.fields.get("structured_data") else { panic!("{:?}", p.fields) };
        let Some(Value::Map(e)) = sd.get("exampleSDID@32473") else { panic!() };
        assert_eq!(e.get("eventSource").unwrap().as_str(), Some("Appli\"cation"));
        assert_eq!(p.message.unwrap().as_str(), "An application event");
    }

    #[test]
    fn malformed() {
        assert!(run("<34>garbage").is_err());
        assert!(run("<999>Nov 21 01:16:20 h x: y").is_err()); // PRI out of range: not a header
        assert!(run("<86>1 2026-11-21T01:02:03Z host").is_err());
        assert!(run(r#"<86>1 - h a p m [bad"#).is_err());
        assert!(run("").is_err());
    }
}
