//! Pure, I/O-free parsers (header formats, printf templates, syslog, logfmt, JSON). Filled in by the parse-stage work.
