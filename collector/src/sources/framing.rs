//! Splits a byte stream into syslog messages.
//!
//! RFC 6587 defines two framings for syslog over TCP: octet counting
//! (`<len> <msg>`) and non-transparent framing (one message per line).
//! Like rsyslog, the framing is detected at the start of every frame: a
//! digit followed by up to nine more digits and a space means octet
//! counting, anything else a newline-terminated line. Streams that carry
//! plain log lines (files, stdin) use [`Framing::Newline`] only, so a line
//! such as `2024 was a good year` is never mistaken for a length.
//!
//! Frames longer than the limit are cut there and flagged; the rest of the
//! oversized frame is skipped, so one huge frame can neither exhaust memory
//! nor desynchronize the stream.

use crate::pipeline::RawLine;

/// Which framings to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Octet counting or newline, detected per frame (syslog over TCP/TLS).
    Auto,
    /// Newline only (files, stdin).
    Newline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// Skip this many more bytes of an oversized octet-counted frame.
    Octets(usize),
    /// Skip up to and including the next newline.
    ToNewline,
}

/// Incremental framer: feed bytes, take complete frames.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    max: usize,
    /// Bytes held are `buf[pos..end]`; past `end` is read space, kept
    /// between reads so it is zeroed once rather than on every read (that
    /// was a 64 KiB memset per read, however few bytes the read brought).
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    skip: Skip,
}

impl Framer {
    pub fn new(framing: Framing, max_frame: usize) -> Framer {
        Framer {
            framing,
            max: max_frame.max(1),
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            end: 0,
            skip: Skip::None,
        }
    }

    /// Space to read into: the caller reads up to `spare.len()` bytes and
    /// then calls [`Framer::filled`].
    pub fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.pos > 0 && (self.pos == self.end || self.pos > self.buf.capacity() / 2) {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let until = self.end + want;
        if self.buf.len() < until {
            self.buf.resize(until, 0);
        }
        &mut self.buf[self.end..until]
    }

    /// Commits `n` bytes read into the slice from [`Framer::spare`] (of the
    /// `want` asked for; the rest stays read space).
    pub fn filled(&mut self, want: usize, n: usize) {
        self.end += n.min(want);
    }

    /// Appends bytes (for callers that already hold a slice).
    pub fn push(&mut self, data: &[u8]) {
        let s = self.spare(data.len());
        s.copy_from_slice(data);
        self.filled(data.len(), data.len());
    }

    /// Bytes held that are not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.end - self.pos
    }

    /// Moves every complete frame into `out`.
    pub fn drain_frames(&mut self, out: &mut Vec<RawLine>) {
        while let Some(f) = self.next_frame() {
            if let Some(f) = f {
                out.push(f);
            }
        }
    }

    /// The end of the stream: whatever is left becomes a last frame (a line
    /// without its newline, or a short octet-counted frame, flagged
    /// truncated).
    pub fn finish(&mut self, out: &mut Vec<RawLine>) {
        self.drain_frames(out);
        if self.skip != Skip::None {
            self.skip = Skip::None;
            self.pos = self.end;
            return;
        }
        let rest = &self.buf[self.pos..self.end];
        if rest.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
            self.pos = self.end;
            return;
        }
        let mut truncated = false;
        let mut data = rest;
        if self.framing == Framing::Auto {
            if let Some((hdr, len)) = octet_header(rest) {
                data = &rest[hdr..];
                truncated = data.len() < len;
            }
        }
        let data = strip_cr(data);
        let (data, cut) = if data.len() > self.max {
            (&data[..self.max], true)
        } else {
            (data, false)
        };
        out.push(RawLine {
            data: data.to_vec(),
            truncated: truncated || cut,
            ..RawLine::default()
        });
        self.pos = self.end;
    }

    /// `Some(Some(frame))`: a frame; `Some(None)`: progress without a frame
    /// (skipped bytes); `None`: need more input.
    fn next_frame(&mut self) -> Option<Option<RawLine>> {
        let avail = &self.buf[self.pos..self.end];
        if avail.is_empty() {
            return None;
        }
        match self.skip {
            Skip::Octets(n) => {
                let take = n.min(avail.len());
                self.pos += take;
                self.skip = if take == n {
                    Skip::None
                } else {
                    Skip::Octets(n - take)
                };
                return Some(None);
            }
            Skip::ToNewline => {
                return match memchr::memchr(b'\n', avail) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.skip = Skip::None;
                        Some(None)
                    }
                    None => {
                        self.pos = self.end;
                        None
                    }
                };
            }
            Skip::None => {}
        }
        // Separators between frames (and empty lines) carry nothing.
        if matches!(avail[0], b'\n' | b'\r' | 0) {
            let n = avail
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r' | 0))
                .count();
            self.pos += n;
            return Some(None);
        }
        if self.framing == Framing::Auto && avail[0].is_ascii_digit() {
            match octet_header(avail) {
                Some((hdr, len)) => {
                    if len > self.max {
                        if avail.len() < hdr + self.max {
                            return None;
                        }
                        let data = avail[hdr..hdr + self.max].to_vec();
                        self.pos += hdr + self.max;
                        self.skip = Skip::Octets(len - self.max);
                        return Some(Some(RawLine {
                            data,
                            truncated: true,
                            ..RawLine::default()
                        }));
                    }
                    if avail.len() < hdr + len {
                        return None;
                    }
                    let data = strip_cr(&avail[hdr..hdr + len]).to_vec();
                    self.pos += hdr + len;
                    return Some(Some(RawLine::new(data)));
                }
                None if avail.len() < 11 && avail.iter().all(u8::is_ascii_digit) => {
                    // Could still become a length header.
                    return None;
                }
                None => {}
            }
        }
        match memchr::memchr(b'\n', avail) {
            Some(i) if i <= self.max => {
                let data = strip_cr(&avail[..i]).to_vec();
                self.pos += i + 1;
                Some(Some(RawLine::new(data)))
            }
            Some(_) | None if avail.len() > self.max => {
                let data = avail[..self.max].to_vec();
                self.pos += self.max;
                self.skip = Skip::ToNewline;
                Some(Some(RawLine {
                    data,
                    truncated: true,
                    ..RawLine::default()
                }))
            }
            _ => None,
        }
    }
}

/// `<digits> SP` at the start: (header length including the space, frame length).
fn octet_header(b: &[u8]) -> Option<(usize, usize)> {
    let digits = b.iter().take(10).take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || b.get(digits) != Some(&b' ') || b[0] == b'0' {
        return None;
    }
    let len: usize = std::str::from_utf8(&b[..digits]).ok()?.parse().ok()?;
    Some((digits + 1, len))
}

fn strip_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framing: Framing, max: usize, chunks: &[&[u8]], finish: bool) -> Vec<(String, bool)> {
        let mut f = Framer::new(framing, max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            f.drain_frames(&mut out);
        }
        if finish {
            f.finish(&mut out);
        }
        out.into_iter()
            .map(|l| (String::from_utf8_lossy(&l.data).into_owned(), l.truncated))
            .collect()
    }

    #[test]
    fn reads_of_any_size_through_spare_and_filled() {
        let stream: Vec<u8> = (0..200)
            .flat_map(|i| {
                if i % 3 == 0 {
                    let line = format!("<13>framed {i}");
                    format!("{} {line}", line.len()).into_bytes()
                } else {
                    format!("<13>line {i}\n").into_bytes()
                }
            })
            .collect();
        let want: Vec<String> = (0..200)
            .map(|i| {
                if i % 3 == 0 {
                    format!("<13>framed {i}")
                } else {
                    format!("<13>line {i}")
                }
            })
            .collect();
        for step in [1, 7, 64, 1000] {
            let mut f = Framer::new(Framing::Auto, 100);
            let mut out = Vec::new();
            let mut at = 0;
            while at < stream.len() {
                let spare = f.spare(64);
                let n = step.min(64).min(stream.len() - at);
                spare[..n].copy_from_slice(&stream[at..at + n]);
                f.filled(64, n);
                at += n;
                f.drain_frames(&mut out);
                assert!(f.pending() <= 100 + 12, "step {step}: {} held", f.pending());
            }
            f.finish(&mut out);
            let got: Vec<String> = out
                .iter()
                .map(|l| String::from_utf8_lossy(&l.data).into_owned())
                .collect();
            assert_eq!(got, want, "step {step}");
            assert!(f.buf.len() <= 64 * 1024, "read space stays bounded");
        }
    }

    #[test]
    fn newline_framing_with_crlf_and_split_reads() {
        let got = frames(
            Framing::Auto,
            100,
            &[b"<13>a b\r\n<13>c", b" d\n\n<14>e"],
            true,
        );
        assert_eq!(
            got,
            vec![
                ("<13>a b".into(), false),
                ("<13>c d".into(), false),
                ("<14>e".into(), false)
            ]
        );
    }

    #[test]
    fn octet_counting_split_anywhere() {
        let stream = b"7 <13>abc11 <13>a\nb c d";
        for cut in 0..stream.len() {
            let got = frames(Framing::Auto, 100, &[&stream[..cut], &stream[cut..]], false);
            assert_eq!(
                got,
                vec![("<13>abc".into(), false), ("<13>a\nb c d".into(), false)],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn mixed_framings_in_one_stream() {
        let got = frames(
            Framing::Auto,
            100,
            &[b"<13>line one\n4 <1>x<13>line two\n"],
            false,
        );
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, "<1>x");
    }

    #[test]
    fn oversized_octet_frame_is_cut_and_rest_skipped() {
        let mut s = b"20 ".to_vec();
        s.extend_from_slice(b"0123456789abcdefghij");
        s.extend_from_slice(b"3 <1>");
        let got = frames(Framing::Auto, 8, &[&s], false);
        assert_eq!(got, vec![("01234567".into(), true), ("<1>".into(), false)]);
    }

    #[test]
    fn oversized_line_is_cut_and_rest_skipped() {
        let got = frames(Framing::Newline, 5, &[b"abcdefghij", b"klmn\nok\n"], false);
        assert_eq!(got, vec![("abcde".into(), true), ("ok".into(), false)]);
    }

    #[test]
    fn newline_framing_never_reads_lengths() {
        let got = frames(Framing::Newline, 100, &[b"2024 was a year\n12 x\n"], false);
        assert_eq!(got[0].0, "2024 was a year");
        assert_eq!(got[1].0, "12 x");
    }

    #[test]
    fn digits_without_space_are_a_line() {
        let got = frames(Framing::Auto, 100, &[b"2024-01-01 boot\n"], false);
        assert_eq!(got, vec![("2024-01-01 boot".into(), false)]);
    }

    #[test]
    fn last_line_without_newline_at_eof() {
        let got = frames(Framing::Newline, 100, &[b"a\nb"], true);
        assert_eq!(got, vec![("a".into(), false), ("b".into(), false)]);
        let got = frames(Framing::Auto, 100, &[b"10 <1>abc"], true);
        assert_eq!(got, vec![("<1>abc".into(), true)]);
    }
}
