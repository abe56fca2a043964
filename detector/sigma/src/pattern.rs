//! Compiled string patterns: exact, prefix, suffix, substring and general
//! globs (`*`, `?`, `windash` classes). Case-insensitive patterns are stored
//! lower-cased and run against the lower-cased value (see
//! [`crate::value::lowercase_into`]); `cased` ones run against the value as is.

use memchr::memmem;

use crate::value::WINDASH_CHARS;

/// One glob element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobTok {
    Lit(String),
    Star,
    One,
    Dash,
}

/// A string pattern, in the cheapest form that matches exactly the same set.
// Inline on purpose: patterns are matched per event, boxing costs a pointer chase.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum StrPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(ContainsFinder),
    /// Matches every string (`*`).
    Any,
    Glob(Vec<GlobTok>),
}

/// A substring searcher with its needle (memchr's SIMD `memmem`).
#[derive(Debug, Clone)]
pub struct ContainsFinder {
    pub needle: String,
    finder: memmem::Finder<'static>,
}

impl ContainsFinder {
    pub fn new(needle: String) -> Self {
        let finder = memmem::Finder::new(needle.as_bytes()).into_owned();
        ContainsFinder { needle, finder }
    }
    pub fn is_match(&self, hay: &str) -> bool {
        self.finder.find(hay.as_bytes()).is_some()
    }
}

impl StrPattern {
    /// Picks the cheapest form for a token sequence.
    pub fn from_tokens(toks: Vec<GlobTok>) -> StrPattern {
        let lits: Vec<&String> = toks
            .iter()
            .filter_map(|t| match t {
                GlobTok::Lit(s) => Some(s),
                _ => None,
            })
            .collect();
        let only_stars_and_lits = toks
            .iter()
            .all(|t| matches!(t, GlobTok::Lit(_) | GlobTok::Star));
        if only_stars_and_lits {
            let stars = toks.iter().filter(|t| matches!(t, GlobTok::Star)).count();
            match (toks.as_slice(), stars) {
                ([], _) => return StrPattern::Exact(String::new()),
                ([GlobTok::Lit(s)], 0) => return StrPattern::Exact(s.clone()),
                ([GlobTok::Star], 1) => return StrPattern::Any,
                ([GlobTok::Lit(s), GlobTok::Star], 1) => return StrPattern::Prefix(s.clone()),
                ([GlobTok::Star, GlobTok::Lit(s)], 1) => return StrPattern::Suffix(s.clone()),
                ([GlobTok::Star, GlobTok::Lit(s), GlobTok::Star], 2) => {
                    return StrPattern::Contains(ContainsFinder::new(s.clone()))
                }
                _ if lits.is_empty() => return StrPattern::Any, // only stars
                _ => {}
            }
        }
        StrPattern::Glob(toks)
    }

    pub fn is_match(&self, hay: &str) -> bool {
        match self {
            StrPattern::Exact(s) => hay == s,
            StrPattern::Prefix(s) => hay.starts_with(s.as_str()),
            StrPattern::Suffix(s) => hay.ends_with(s.as_str()),
            StrPattern::Contains(f) => f.is_match(hay),
            StrPattern::Any => true,
            StrPattern::Glob(t) => glob_match(t, hay),
        }
    }

    /// The literal runs every match must contain.
    pub fn literal_runs(&self) -> Vec<&str> {
        match self {
            StrPattern::Exact(s) | StrPattern::Prefix(s) | StrPattern::Suffix(s) => vec![s],
            StrPattern::Contains(f) => vec![&f.needle],
            StrPattern::Any => vec![],
            StrPattern::Glob(t) => t
                .iter()
                .filter_map(|x| match x {
                    GlobTok::Lit(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// True when "the value contains the literal" is the whole pattern.
    pub fn is_plain_contains(&self) -> bool {
        matches!(self, StrPattern::Contains(_))
    }
}

/// Glob matching over characters with backtracking to the last star:
/// O(len(hay) · len(pattern)) worst case, no recursion.
pub fn glob_match(toks: &[GlobTok], hay: &str) -> bool {
    // Fast anchors: a leading literal must be a prefix, a trailing one a suffix.
    let mut toks = toks;
    let mut hay = hay;
    if let Some(GlobTok::Lit(s)) = toks.first() {
        match hay.strip_prefix(s.as_str()) {
            Some(rest) => {
                hay = rest;
                toks = &toks[1..];
            }
            None => return false,
        }
    }
    if let Some(GlobTok::Lit(s)) = toks.last() {
        match hay.strip_suffix(s.as_str()) {
            Some(rest) => {
                hay = rest;
                toks = &toks[..toks.len() - 1];
            }
            None => return false,
        }
    }
    let mut ti = 0usize; // token index
    let mut hi = 0usize; // byte index into hay
    let mut backtrack: Option<(usize, usize)> = None; // (token after star, hay pos)
    loop {
        if ti < toks.len() {
            match &toks[ti] {
                GlobTok::Star => {
                    ti += 1;
                    backtrack = Some((ti, hi));
                    continue;
                }
                GlobTok::Lit(s) => {
                    if hay[hi..].starts_with(s.as_str()) {
                        hi += s.len();
                        ti += 1;
                        continue;
                    }
                }
                GlobTok::One => {
                    if let Some(c) = hay[hi..].chars().next() {
                        hi += c.len_utf8();
                        ti += 1;
                        continue;
                    }
                }
                GlobTok::Dash => {
                    if let Some(c) = hay[hi..].chars().next() {
                        if WINDASH_CHARS.contains(&c) {
                            hi += c.len_utf8();
                            ti += 1;
                            continue;
                        }
                    }
                }
            }
        } else if hi == hay.len() {
            return true;
        }
        // mismatch: retry after the last star, one character further
        match backtrack {
            Some((bt, bh)) => {
                let Some(c) = hay[bh..].chars().next() else {
                    return false;
                };
                let nh = bh + c.len_utf8();
                backtrack = Some((bt, nh));
                ti = bt;
                hi = nh;
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> GlobTok {
        GlobTok::Lit(s.into())
    }

    #[test]
    fn forms() {
        assert!(matches!(
            StrPattern::from_tokens(vec![lit("a")]),
            StrPattern::Exact(_)
        ));
        assert!(matches!(
            StrPattern::from_tokens(vec![lit("a"), GlobTok::Star]),
            StrPattern::Prefix(_)
        ));
        assert!(matches!(
            StrPattern::from_tokens(vec![GlobTok::Star, lit("a")]),
            StrPattern::Suffix(_)
        ));
        assert!(matches!(
            StrPattern::from_tokens(vec![GlobTok::Star, lit("a"), GlobTok::Star]),
            StrPattern::Contains(_)
        ));
        assert!(matches!(
            StrPattern::from_tokens(vec![GlobTok::Star, GlobTok::Star]),
            StrPattern::Any
        ));
        assert!(matches!(StrPattern::from_tokens(vec![]), StrPattern::Exact(s) if s.is_empty()));
    }

    #[test]
    fn glob_semantics() {
        let g = |t: Vec<GlobTok>, h: &str| glob_match(&t, h);
        assert!(g(vec![lit("prog"), GlobTok::One, lit(".exe")], "proga.exe"));
        assert!(!g(vec![lit("prog"), GlobTok::One, lit(".exe")], "prog.exe"));
        assert!(
            g(vec![lit("prog"), GlobTok::One, lit(".exe")], "progé.exe"),
            "? is one character"
        );
        assert!(g(
            vec![lit("a"), GlobTok::Star, lit("b"), GlobTok::Star, lit("c")],
            "axxbyybzc"
        ));
        assert!(!g(
            vec![lit("a"), GlobTok::Star, lit("b"), GlobTok::Star, lit("c")],
            "axxbyyz"
        ));
        assert!(g(
            vec![GlobTok::Star, lit("ab"), GlobTok::Star, lit("ab")],
            "abab"
        ));
        assert!(!g(
            vec![GlobTok::Star, lit("ab"), GlobTok::Star, lit("ab")],
            "ab"
        ));
        assert!(g(
            vec![GlobTok::Star, GlobTok::Dash, lit("enc"), GlobTok::Star],
            "powershell \u{2014}enc x"
        ));
        assert!(g(
            vec![GlobTok::Star, GlobTok::Dash, lit("enc"), GlobTok::Star],
            "x /enc"
        ));
        assert!(!g(
            vec![GlobTok::Star, GlobTok::Dash, lit("enc"), GlobTok::Star],
            "x +enc"
        ));
        assert!(g(vec![GlobTok::Star, GlobTok::One, GlobTok::Star], "x"));
        assert!(!g(vec![GlobTok::Star, GlobTok::One, GlobTok::Star], ""));
        assert!(g(vec![lit("a"), GlobTok::Star, lit("a")], "aa"));
        assert!(
            !g(vec![lit("a"), GlobTok::Star, lit("a")], "a"),
            "prefix and suffix may not overlap"
        );
    }
}
