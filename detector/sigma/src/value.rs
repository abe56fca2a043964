//! Sigma string values: wildcards, escapes and placeholders.
//!
//! A Sigma string is text with two wildcards (`*` any run of characters,
//! `?` exactly one character) and one escape character (`\`), per the
//! "Escape Character" section of the rules specification:
//!
//! * `\*`, `\?` and `\\` are the plain characters `*`, `?` and `\`;
//! * a backslash before any other character is a plain backslash, so
//!   `C:\Windows` needs no escaping and `\\\\` is two backslashes;
//! * with the `expand` modifier, `%name%` is a placeholder and `\%` a plain
//!   percent sign; without it `%` is an ordinary character.
//!
//! Modifiers then rewrite the token list (`contains` adds stars, `windash`
//! turns dashes into a character class, `base64` re-encodes the text ...).
//! Literal runs are bytes because the UTF-16 modifiers produce bytes that
//! are only text again after `base64`.

use std::fmt;

/// One piece of a Sigma string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// Plain bytes (UTF-8 text unless an encoding modifier changed them).
    Lit(Vec<u8>),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
    /// A `windash` position: one of [`WINDASH_CHARS`].
    Dash,
    /// `%name%` under the `expand` modifier, replaced at compile time.
    Placeholder(String),
}

/// The characters a `windash` position matches: hyphen-minus, slash, en
/// dash, em dash and horizontal bar (Sigma 2.1 modifiers appendix; pySigma
/// uses the same five).
pub const WINDASH_CHARS: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// A parsed Sigma string: a sequence of tokens with adjacent literals merged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigmaStr {
    pub toks: Vec<Tok>,
}

impl SigmaStr {
    /// Parses rule text. `placeholders` is true under the `expand` modifier.
    pub fn parse(text: &str, placeholders: bool) -> SigmaStr {
        let mut out = SigmaStr::default();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '\\' => match chars.get(i + 1) {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        out.push_char(n);
                        i += 2;
                    }
                    Some('%') if placeholders => {
                        out.push_char('%');
                        i += 2;
                    }
                    _ => {
                        out.push_char('\\');
                        i += 1;
                    }
                },
                '*' => {
                    out.toks.push(Tok::Star);
                    i += 1;
                }
                '?' => {
                    out.toks.push(Tok::One);
                    i += 1;
                }
                '%' if placeholders => match placeholder_end(&chars, i) {
                    Some(end) => {
                        let name: String = chars[i + 1..end].iter().collect();
                        out.toks.push(Tok::Placeholder(name));
                        i = end + 1;
                    }
                    None => {
                        out.push_char('%');
                        i += 1;
                    }
                },
                _ => {
                    out.push_char(c);
                    i += 1;
                }
            }
        }
        out
    }

    /// A string with no special characters at all.
    pub fn plain(text: &str) -> SigmaStr {
        let mut s = SigmaStr::default();
        if !text.is_empty() {
            s.toks.push(Tok::Lit(text.as_bytes().to_vec()));
        }
        s
    }

    fn push_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.push_bytes(c.encode_utf8(&mut buf).as_bytes());
    }

    /// Appends literal bytes, merging with a preceding literal.
    pub fn push_bytes(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if let Some(Tok::Lit(prev)) = self.toks.last_mut() {
            prev.extend_from_slice(b);
        } else {
            self.toks.push(Tok::Lit(b.to_vec()));
        }
    }

    /// Appends a token, merging literals.
    pub fn push(&mut self, t: Tok) {
        match t {
            Tok::Lit(b) => self.push_bytes(&b),
            other => self.toks.push(other),
        }
    }

    pub fn starts_with_star(&self) -> bool {
        matches!(self.toks.first(), Some(Tok::Star))
    }

    pub fn ends_with_star(&self) -> bool {
        matches!(self.toks.last(), Some(Tok::Star))
    }

    /// True when the value has wildcards, dash classes or placeholders.
    pub fn has_special(&self) -> bool {
        self.toks.iter().any(|t| !matches!(t, Tok::Lit(_)))
    }

    pub fn has_placeholders(&self) -> bool {
        self.toks.iter().any(|t| matches!(t, Tok::Placeholder(_)))
    }

    /// The literal bytes when the value has no special tokens.
    pub fn as_plain_bytes(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for t in &self.toks {
            match t {
                Tok::Lit(b) => out.extend_from_slice(b),
                _ => return None,
            }
        }
        Some(out)
    }
}

/// `%name%` starting at `start`: returns the index of the closing `%` when
/// the name is one or more of `[A-Za-z0-9_.-]`.
fn placeholder_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start + 1;
    while j < chars.len() {
        let c = chars[j];
        if c == '%' {
            return (j > start + 1).then_some(j);
        }
        if !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return None;
        }
        j += 1;
    }
    None
}

impl fmt::Display for SigmaStr {
    /// Writes the value back in Sigma notation (escaping specials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.toks {
            match t {
                Tok::Lit(b) => {
                    let text = String::from_utf8_lossy(b);
                    for c in text.chars() {
                        match c {
                            '*' | '?' => write!(f, "\\{c}")?,
                            '\0' => f.write_str("\\0")?,
                            _ => write!(f, "{c}")?,
                        }
                    }
                }
                Tok::Star => f.write_str("*")?,
                Tok::One => f.write_str("?")?,
                Tok::Dash => f.write_str("[-/–—―]")?,
                Tok::Placeholder(n) => write!(f, "%{n}%")?,
            }
        }
        Ok(())
    }
}

/// Whether `b` is pure ASCII, as `<[u8]>::is_ascii`, but with the high
/// bits of the text OR-ed together 16 bytes at a time and tested once at
/// the end: the standard test branches on every word as it goes, some 180
/// instructions for a 220-byte raw line that is checked on every event
/// (callgrind), this about a third of that. For long texts that are
/// mostly ASCII (raw lines); on short field values the standard test was
/// as cheap (Windows lane, lower-casing: +37 instructions per event).
#[inline]
pub fn is_ascii(b: &[u8]) -> bool {
    let word = |w: &[u8]| -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        u64::from_ne_bytes(a)
    };
    let mut acc = 0u64;
    let mut chunks = b.chunks_exact(16);
    for c in &mut chunks {
        let (x, y) = c.split_at(8);
        acc |= word(x) | word(y);
    }
    let rest = chunks.remainder();
    if rest.len() >= 8 {
        // the last eight bytes: overlap with the chunks is harmless
        acc |= word(&rest[..8]) | word(&rest[rest.len() - 8..]);
    } else {
        for &x in rest {
            acc |= u64::from(x);
        }
    }
    acc & 0x8080_8080_8080_8080 == 0
}

/// Lowercases text character by character (`char::to_lowercase`), into
/// `out`. Unlike `str::to_lowercase` this has no context rules (Greek final
/// sigma), so lowercasing commutes with taking substrings — the property the
/// literal prefilter relies on to never drop a match.
pub fn lowercase_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_lowercase();
        return;
    }
    out.reserve(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        // ASCII runs in bulk, other characters one by one
        let ascii = ascii_prefix(rest.as_bytes());
        if ascii > 0 {
            let start = out.len();
            out.push_str(&rest[..ascii]);
            out[start..].make_ascii_lowercase();
            rest = &rest[ascii..];
        }
        if let Some(c) = rest.chars().next() {
            for l in c.to_lowercase() {
                out.push(l);
            }
            rest = &rest[c.len_utf8()..];
        }
    }
}

/// Length of the ASCII prefix of `b` (16 bytes at a time, then byte by byte).
fn ascii_prefix(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 16) {
        if !chunk.is_ascii() {
            break;
        }
        i += 16;
    }
    i + b[i..]
        .iter()
        .position(|&c| c >= 0x80)
        .unwrap_or(b.len() - i)
}

/// [`lowercase_into`] returning a new string.
pub fn lowercase(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    lowercase_into(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_ascii_agrees_with_the_standard_test() {
        let mut rng = crate::synth::Rng::new(7);
        for len in 0..70usize {
            for at in 0..=len {
                let mut b: Vec<u8> = (0..len).map(|_| rng.below(128) as u8).collect();
                assert_eq!(is_ascii(&b), b.is_ascii());
                if at < len {
                    b[at] = 0x80 | rng.below(128) as u8;
                    assert_eq!(is_ascii(&b), b.is_ascii(), "{len} {at}");
                    assert!(!is_ascii(&b));
                }
            }
        }
        assert!(is_ascii("GET / HTTP/1.1".as_bytes()));
        assert!(!is_ascii("K\u{212A}elvin".as_bytes()));
    }

    fn lit(s: &str) -> Tok {
        Tok::Lit(s.as_bytes().to_vec())
    }

    #[test]
    fn escapes_follow_the_specification() {
        // plain backslash not followed by a wildcard
        assert_eq!(
            SigmaStr::parse(r"C:\Windows", false).toks,
            vec![lit(r"C:\Windows")]
        );
        // escaped wildcards
        assert_eq!(SigmaStr::parse(r"a\*b\?", false).toks, vec![lit("a*b?")]);
        // escaped backslash before a wildcard
        assert_eq!(
            SigmaStr::parse(r"a\\*", false).toks,
            vec![lit(r"a\"), Tok::Star]
        );
        // three backslashes: plain backslash and plain star
        assert_eq!(SigmaStr::parse(r"a\\\*", false).toks, vec![lit(r"a\*")]);
        // three or four backslashes are a double backslash
        assert_eq!(SigmaStr::parse(r"a\\\\b", false).toks, vec![lit(r"a\\b")]);
        assert_eq!(SigmaStr::parse(r"a\\\b", false).toks, vec![lit(r"a\\b")]);
        // trailing backslash
        assert_eq!(SigmaStr::parse(r"a\", false).toks, vec![lit(r"a\")]);
    }

    #[test]
    fn wildcards_become_tokens() {
        assert_eq!(
            SigmaStr::parse("prog?.exe*", false).toks,
            vec![lit("prog"), Tok::One, lit(".exe"), Tok::Star]
        );
    }

    #[test]
    fn placeholders_only_under_expand() {
        assert_eq!(SigmaStr::parse("%name%", false).toks, vec![lit("%name%")]);
        assert_eq!(
            SigmaStr::parse("%name%", true).toks,
            vec![Tok::Placeholder("name".into())]
        );
        assert_eq!(
            SigmaStr::parse(r"\%plain%name%", true).toks,
            vec![lit("%plain"), Tok::Placeholder("name".into())]
        );
        assert_eq!(
            SigmaStr::parse("100% sure", true).toks,
            vec![lit("100% sure")]
        );
    }

    #[test]
    fn lowercase_is_per_character() {
        assert_eq!(lowercase("ΣΑΣ"), "σασ"); // no final-sigma rule
        assert_eq!(lowercase("CMD.EXE"), "cmd.exe");
        assert_eq!(lowercase("\u{212A}"), "k"); // Kelvin sign
        let long = "Microsoft® Windows® Operating System, SIXTEEN BYTES AND MORE Ä";
        assert_eq!(lowercase(long), long.to_lowercase());
        assert_eq!(ascii_prefix(b"0123456789abcdefXYZ\xc3"), 19);
    }
}
