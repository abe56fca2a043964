//! The wire form's common case, read by hand.
//!
//! [`super::stream_decode`] reads any JSON through serde's visitors. For
//! the detector, which decodes every message of every agency, that
//! machinery (a visitor call per token, a generic string reader, a seed per
//! member) cost about 23,000 instructions for an 850-byte event: three
//! times what evaluating the event against every rule cost. This reader
//! handles what collectors write (objects of strings, integers, booleans,
//! nulls and lists of those) in one pass over the bytes, and gives up
//! (`None`) on anything else. The serde reader then decodes the message, so
//! unusual input (fractions, objects inside lists, a wrong
//! `schema_version`, broken JSON) gets exactly the event, or the error
//! message, it always had; a test checks that the two agree.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::DeserializeSeed;

use super::stream_decode::{logsource_slot, logsource_text, Scalar, State};
use super::{Event, LogSource, Value};

/// Deeper nesting is left to the serde reader (and its own limit).
const MAX_DEPTH: usize = 64;

/// Reads `text` as an event, or `None` when it is not in the common case
/// (or not valid): the caller then uses the serde reader.
pub(super) fn decode(text: &str, ingested: DateTime<Utc>) -> Option<Event> {
    let mut reader = Reader {
        b: text.as_bytes(),
        text,
        i: 0,
    };
    let mut state = State::new(ingested);
    reader.root(&mut state)?;
    if state.problem.is_some() {
        // A wrong typed member: the serde reader reports it in its words.
        return None;
    }
    Some(state.finish(text.as_bytes()))
}

/// A cursor over valid UTF-8: every position it stops at is an ASCII byte,
/// so slicing `text` there cannot split a character.
struct Reader<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    /// The next byte after any whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    /// Consumes `c` if it comes next (after whitespace).
    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.i += 1;
        }
        found
    }

    /// After a member or element: `true` when another follows, `false` at
    /// `close`, `None` for anything else.
    fn more(&mut self, close: u8) -> Option<bool> {
        if self.eat(b',') {
            Some(true)
        } else if self.eat(close) {
            Some(false)
        } else {
            None
        }
    }

    fn root(&mut self, state: &mut State) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if !self.eat(b'}') {
            loop {
                let key = self.key()?;
                match key.as_ref() {
                    "schema_version" => state.schema_version(self.scalar(1)?),
                    "@timestamp" => state.timestamp(self.scalar(1)?),
                    "logsource" => state.ev.logsource = self.logsource()?,
                    name => {
                        state.name.clear();
                        state.name.push_str(name);
                        self.member(state, 1)?;
                    }
                }
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        // Nothing but whitespace may follow the object.
        (self.peek().is_none()).then_some(())
    }

    /// An object key and its colon.
    fn key(&mut self) -> Option<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let key = self.string()?;
        self.eat(b':').then_some(key)
    }

    /// A member under `state.name`: an object extends the name, anything
    /// else is stored under it (as the serde reader's `Member` does).
    fn member(&mut self, state: &mut State, depth: usize) -> Option<()> {
        if self.peek()? != b'{' {
            let value = self.scalar(depth)?;
            state.put(value);
            return Some(());
        }
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        if self.eat(b'}') {
            // An empty object has no dotted children: kept as its text.
            state.put(Value::Str("{}".into()));
            return Some(());
        }
        let base = state.name.len();
        loop {
            let key = self.key()?;
            state.name.truncate(base);
            state.name.push('.');
            state.name.push_str(&key);
            self.member(state, depth + 1)?;
            if !self.more(b'}')? {
                break;
            }
        }
        state.name.truncate(base);
        Some(())
    }

    /// A string, number, literal or list of those; `None` for an object
    /// (inside a list it is kept as JSON text, which the serde reader does).
    fn scalar(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'"' => Some(Value::Str(self.string()?.into_owned())),
            b'[' => {
                if depth > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                let mut list = Vec::with_capacity(4);
                if !self.eat(b']') {
                    loop {
                        list.push(self.scalar(depth + 1)?);
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
                Some(Value::List(list))
            }
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Option<Value> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word.as_bytes()).then(|| {
            self.i = end;
            value
        })
    }

    /// A plain integer of up to 18 digits is read here; any other number
    /// (fractions, exponents, big or odd forms) as serde_json reads it.
    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while let Some(&c) = self.b.get(self.i) {
            if !(c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')) {
                break;
            }
            self.i += 1;
        }
        let text = self.text.get(start..self.i)?;
        let digits = text.strip_prefix('-').unwrap_or(text);
        let plain = !digits.is_empty()
            && digits.len() <= 18
            && digits.bytes().all(|c| c.is_ascii_digit())
            && (digits.len() == 1 || !digits.starts_with('0'))
            && text != "-0";
        if plain {
            return text.parse().ok().map(Value::Int);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Scalar.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(value)
    }

    /// A string at the cursor (on its opening quote): borrowed from the
    /// input unless it has escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i + 1;
        let end = self.special(start)?;
        match self.b[end] {
            b'"' => {
                self.i = end + 1;
                Some(Cow::Borrowed(self.text.get(start..end)?))
            }
            b'\\' => self.escaped(start, end).map(Cow::Owned),
            // A raw control character: not JSON.
            _ => None,
        }
    }

    /// The rest of a string from its first backslash at `at`.
    fn escaped(&mut self, start: usize, mut at: usize) -> Option<String> {
        let mut out = String::with_capacity(at - start + 16);
        out.push_str(self.text.get(start..at)?);
        loop {
            // `at` is on a backslash.
            let mut next = at + 2;
            match *self.b.get(at + 1)? {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let high = self.hex4(next)?;
                    next += 4;
                    let code = if (0xD800..0xDC00).contains(&high) {
                        // A surrogate pair, or (alone) not a character.
                        if self.b.get(next..next + 2)? != b"\\u" {
                            return None;
                        }
                        let low = self.hex4(next + 2)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        next += 6;
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        high
                    };
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            }
            let end = self.special(next)?;
            out.push_str(self.text.get(next..end)?);
            match self.b[end] {
                b'"' => {
                    self.i = end + 1;
                    return Some(out);
                }
                b'\\' => at = end,
                _ => return None,
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        digits.iter().try_fold(0u32, |n, &c| {
            let d = (c as char).to_digit(16)?;
            Some(n * 16 + d)
        })
    }

    /// Where the next quote, backslash or control character is, from
    /// `from`: eight bytes at a time (bytes of multi-byte characters are
    /// all 0x80 and up, never one of these).
    fn special(&self, from: usize) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let mut i = from;
        while let Some(chunk) = self.b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().ok()?);
            let quote = w ^ (ONES * u64::from(b'"'));
            let slash = w ^ (ONES * u64::from(b'\\'));
            // Per byte: zero (quote, slash) or below 0x20 (control). A
            // borrow can only mark bytes after a real match, and the first
            // mark is the one taken.
            let marks = (quote.wrapping_sub(ONES) & !quote)
                | (slash.wrapping_sub(ONES) & !slash)
                | (w.wrapping_sub(ONES * 0x20) & !w);
            let marks = marks & HIGHS;
            if marks != 0 {
                return Some(i + (marks.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        while let Some(&c) = self.b.get(i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// `logsource`: its three Sigma attributes. Anything but an object of
    /// scalars is left to the serde reader.
    fn logsource(&mut self) -> Option<LogSource> {
        if !self.eat(b'{') {
            return None;
        }
        let mut ls = LogSource::default();
        if self.eat(b'}') {
            return Some(ls);
        }
        loop {
            let key = self.key()?;
            let value = self.scalar(2)?;
            if let Some(slot) = logsource_slot(&mut ls, &key) {
                *slot = logsource_text(value);
            }
            if !self.more(b'}')? {
                break;
            }
        }
        Some(ls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stream_decode::serde_decode;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap_or_default()
    }

    /// Runs both readers on `text`; whenever the fast one reads an event,
    /// it must be the serde reader's. Returns whether the fast one read it.
    fn agree(text: &str) -> bool {
        let fast = decode(text, at());
        if let Some(ev) = &fast {
            match serde_decode(text.as_bytes(), Some(text), at()) {
                Ok(reference) => assert_eq!(ev, &reference, "{text}"),
                Err(e) => panic!("the fast reader accepted what serde refuses ({e}): {text}"),
            }
        }
        fast.is_some()
    }

    #[test]
    fn collector_events_take_the_fast_path_and_read_the_same() {
        let cases = [
            r#"{"schema_version":1,"@timestamp":"2026-11-20T09:00:00.000000Z","event":{"action":"ssh_login","category":["authentication"],"dataset":"syslog3164.sshd","ingested":"2026-11-28T09:11:06.871201Z","kind":"event","module":"sshd","original":"Nov 20 09:00:00 portal-web sshd[4242]: Failed password for invalid user admin from 203.0.113.70 port 50522 ssh2","outcome":"failure","type":["start"]},"host":{"name":"portal-web"},"message":"Failed password for invalid user admin from 203.0.113.70 port 50522 ssh2","observer":{"name":"col-portal-web","sequence":1,"type":"collector"},"process":{"name":"sshd","pid":4242},"source":{"ip":"203.0.113.70","port":50522},"system":{"auth":{"ssh":{"invalid_user":true,"method":"password"}}},"user":{"name":"admin"},"logsource":{"product":"linux","service":"sshd"}}"#,
            r#"{"schema_version":1,"@timestamp":"2026-11-20T09:00:00Z","event":{"original":"203.0.113.5 - - [20/Nov/2026:09:00:00 +0000] \"GET /login.php?id=1%27%20OR%201=1 HTTP/1.1\" 200 512 \"-\" \"sqlmap/1.7\"","tags":[]},"http":{"request":{"method":"GET"},"response":{"status_code":200}},"url":{"original":"/login.php?id=1%27%20OR%201=1"},"user_agent":{"original":"sqlmap/1.7"},"logsource":{"category":"webserver"}}"#,
            "{\"message\":\"tab\\tnewline\\n slash\\/ quote\\\" back\\\\ \\u00f6 \\ud83d\\ude00 \u{e9}\u{1F600}\",\"n\":null,\"b\":false,\"t\":true,\"neg\":-42,\"zero\":0,\"list\":[1,\"x\",[null,true]],\"empty\":{},\"dup\":1,\"dup\":2}",
            " {\n \"a\" : { \"b\" : [ 1 , 2 ] } ,\t\"c\":\"d\" }\r\n",
            r#"{"EventID":4688,"Image":"C:\\Windows\\System32\\cmd.exe","CommandLine":"cmd.exe /c \"whoami /all\"","ParentImage":"C:\\Windows\\explorer.exe"}"#,
            r#"{"event":{"original":{"not":"text"}},"@timestamp":1700000000123}"#,
            r#"{"f":1.5,"e":1e3,"big":18446744073709551615,"min":-9223372036854775808,"nz":-0}"#,
            "{}",
        ];
        for case in cases {
            assert!(agree(case), "not read by the fast reader: {case}");
        }
        let ev = decode(cases[2], at()).expect("read");
        assert_eq!(
            ev.get_str("message"),
            Some("tab\tnewline\n slash/ quote\" back\\ \u{f6} \u{1F600} \u{e9}\u{1F600}")
        );
        assert_eq!(ev.fields.get("dup"), Some(&Value::Int(2)));
        assert_eq!(ev.get_str("empty"), Some("{}"));
    }

    #[test]
    fn unusual_or_broken_input_is_left_to_the_serde_reader() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(80), "]".repeat(80));
        let cases = [
            r#"{"list":[{"x":1}]}"#,
            r#"{"logsource":"weird"}"#,
            r#"{"schema_version":99}"#,
            r#"{"@timestamp":"yesterday"}"#,
            r#"{"s":"\ud83d alone"}"#,
            r#"{"s":"\ude00 alone"}"#,
            r#"{"s":"\x"}"#,
            "{\"s\":\"raw \u{1} control\"}",
            r#"{"a":1,}"#,
            r#"{"a":1} trailing"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a" 1}"#,
            r#"{"a":"unterminated}"#,
            "[1,2]",
            "",
            &deep,
        ];
        for case in cases {
            assert!(!agree(case), "the fast reader took {case}");
        }
    }

    /// Random JSON texts built from pieces that cover strings, escapes,
    /// numbers, nesting, whitespace and the typed members, broken now and
    /// then: the fast reader must read each as the serde reader does, or
    /// leave it.
    #[test]
    fn random_texts_read_as_the_serde_reader_reads_them() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            object(&mut rng, &mut text, 0, true);
            total += 1;
            if agree(&text) {
                fast += 1;
            }
        }
        // Both paths are exercised: most texts are read fast, some are not.
        assert!(fast * 2 > total, "only {fast} of {total} read fast");
        assert!(
            fast < total,
            "every text was read fast: no broken ones made"
        );
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    fn ws(rng: &mut Rng, out: &mut String) {
        out.push_str(rng.pick(&["", "", "", " ", "\n\t ", "\r\n"]));
    }

    fn string(rng: &mut Rng, out: &mut String) {
        const PIECES: &[&str] = &[
            "a",
            "root",
            "203.0.113.9",
            "ö",
            "😀",
            "\\\"",
            "\\\\",
            "\\/",
            "\\n",
            "\\t",
            "\\b",
            "\\f",
            "\\r",
            "\\u00e9",
            "\\u0000",
            "\\ud83d\\ude00",
            " ",
            "sixteen byte run",
            "C:\\\\Windows",
            "",
            "",
            "",
        ];
        const RARE: &[&str] = &["\\ud83d", "\\ude00", "\\x", "\u{1}", "\\u12"];
        out.push('"');
        for _ in 0..rng.below(6) {
            if rng.below(200) == 0 {
                out.push_str(rng.pick(RARE));
            } else {
                out.push_str(rng.pick(PIECES));
            }
        }
        out.push('"');
    }

    fn value(rng: &mut Rng, out: &mut String, depth: usize) {
        ws(rng, out);
        match rng.below(if depth > 4 { 6 } else { 9 }) {
            0 | 1 => string(rng, out),
            2 => out.push_str(rng.pick(&[
                "0",
                "7",
                "-12",
                "4242",
                "123456789012345678",
                "1234567890123456789",
                "18446744073709551615",
                "18446744073709551616",
                "-9223372036854775808",
                "-9223372036854775809",
                "1.5",
                "-0",
                "-0.0",
                "1e3",
                "1E-2",
                "2e400",
                "0.1",
            ])),
            3 => out.push_str(rng.pick(&["true", "false", "null"])),
            4 if rng.below(300) == 0 => out.push_str(rng.pick(&["01", "1.", "-", "+1", "tru"])),
            4 | 5 => string(rng, out),
            6 => {
                out.push('[');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    if rng.below(40) == 0 {
                        object(rng, out, depth + 1, false);
                    } else {
                        value(rng, out, depth + 1);
                    }
                }
                ws(rng, out);
                out.push(']');
            }
            _ => object(rng, out, depth + 1, false),
        }
        ws(rng, out);
    }

    fn object(rng: &mut Rng, out: &mut String, depth: usize, top: bool) {
        const KEYS: &[&str] = &[
            "a", "b", "event", "original", "ingested", "source", "ip", "user", "esc\\\"k", "ö",
        ];
        out.push('{');
        let mut first = true;
        let sep = |out: &mut String, first: &mut bool| {
            if !std::mem::take(first) {
                out.push(',');
            }
        };
        if top {
            for (key, values) in [
                (
                    "schema_version",
                    &["1", "1", "1", "1", "1", "1", "2", "\"1\""][..],
                ),
                (
                    "@timestamp",
                    &[
                        "\"2026-11-20T09:00:00.123456Z\"",
                        "\"2026-11-20T09:00:00Z\"",
                        "\"2026-11-20T09:00:00.5Z\"",
                        "1700000000123",
                        "1700000000124",
                        "\"2026-11-20T09:00:00+05:00\"",
                        "\"yesterday\"",
                    ][..],
                ),
                (
                    "logsource",
                    &[
                        "{\"product\":\"linux\",\"service\":\"sshd\"}",
                        "{\"product\":\"windows\",\"category\":\"process_creation\"}",
                        "{ \"service\" : \"auth\" }",
                        "{\"category\":\"webserver\",\"x\":[1]}",
                        "{\"product\":1}",
                        "{}",
                        "\"weird\"",
                    ][..],
                ),
            ] {
                if rng.below(3) > 0 {
                    sep(out, &mut first);
                    out.push_str(&format!("\"{key}\":{}", rng.pick(values)));
                }
            }
        }
        for _ in 0..rng.below(if depth > 4 { 2 } else { 5 }) {
            sep(out, &mut first);
            ws(rng, out);
            out.push('"');
            out.push_str(rng.pick(KEYS));
            out.push('"');
            ws(rng, out);
            out.push(':');
            value(rng, out, depth);
        }
        ws(rng, out);
        out.push('}');
        if top && rng.below(400) == 0 {
            out.push_str(rng.pick(&[" x", ",", "}"]));
        }
    }
}
