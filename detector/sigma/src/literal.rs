//! Required literals ("atoms") for the prefilter.
//!
//! An atom is a lower-cased string that must occur in a field's lower-cased
//! value whenever a matcher matches. Lower-casing character by character
//! commutes with taking substrings, so "the value matches ⇒ the atom occurs"
//! holds for case-sensitive matchers too. Matchers without such a guarantee
//! (numbers, CIDR, existence, negations ...) have no atom, and a rule whose
//! condition can be true without any atom occurring is evaluated for every
//! event of its logsource.

use regex_syntax::hir::literal::{ExtractKind, Extractor, Seq};

use crate::value::lowercase;

/// Atoms shorter than this many bytes are not worth scanning for: they hit
/// nearly every event and only cost time.
pub const MIN_ATOM_BYTES: usize = 3;

/// Whether a literal is selective enough to be an atom: three bytes, or any
/// non-ASCII character (a lone Cyrillic lookalike or an unusual dash is rare
/// in logs, and rules that hunt for them would otherwise run on every event).
pub fn atom_worthy(lit: &str) -> bool {
    lit.len() >= MIN_ATOM_BYTES || !lit.is_ascii()
}

/// The best atom among the literal runs of a pattern: the longest run.
pub fn best_run<'a>(runs: impl IntoIterator<Item = &'a str>) -> Option<String> {
    runs.into_iter()
        .max_by_key(|r| r.len())
        .filter(|r| atom_worthy(r))
        .map(lowercase)
}

/// A set of atoms, at least one of which occurs in every match of `re`
/// (parsed with the same flags the matcher uses), or `None` when no useful
/// set exists.
///
/// Besides the literal prefixes and suffixes of the whole expression, the
/// literals of its inner parts count: in a concatenation `c0 c1 … cn` every
/// match contains a match of `ci … cn`, which starts with one of that
/// part's prefix literals (and of `c0 … ci`, which ends with one of its
/// suffix literals). `\.exe\s+.{0,64}werfaultsecure\.exe` thus gets
/// `werfaultsecure` instead of the common `.exe`. The set whose shortest
/// literal is longest wins.
pub fn regex_atoms(hir: &regex_syntax::hir::Hir) -> Option<Vec<String>> {
    use regex_syntax::hir::{Hir, HirKind};
    let mut best: Option<Vec<String>> = None;
    let mut consider = |atoms: Option<Vec<String>>| {
        let key = |a: &Vec<String>| a.iter().map(String::len).min().unwrap_or(0);
        if let Some(a) = atoms {
            if best.as_ref().is_none_or(|b| key(&a) > key(b)) {
                best = Some(a);
            }
        }
    };
    consider(extract(hir, true));
    consider(extract(hir, false));
    // look through capture groups for the top-level concatenation
    let mut top = hir;
    while let HirKind::Capture(c) = top.kind() {
        top = &c.sub;
    }
    if let HirKind::Concat(parts) = top.kind() {
        // bounded: rules have short concatenations, but keep load time flat
        if parts.len() <= 64 {
            for i in 1..parts.len() {
                consider(extract(&Hir::concat(parts[i..].to_vec()), true));
                consider(extract(&Hir::concat(parts[..i].to_vec()), false));
            }
        }
    }
    best
}

/// Prefix (or suffix) literals of `hir` as atoms.
fn extract(hir: &regex_syntax::hir::Hir, prefix: bool) -> Option<Vec<String>> {
    let mut ex = Extractor::new();
    let kind = if prefix {
        ExtractKind::Prefix
    } else {
        ExtractKind::Suffix
    };
    ex.kind(kind).limit_total(64).limit_class(8).limit_repeat(4);
    let seq = ex.extract(hir);
    seq_atoms(&seq, prefix)
}

fn seq_atoms(seq: &Seq, prefix: bool) -> Option<Vec<String>> {
    let lits = seq.literals()?;
    if lits.is_empty() {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for l in lits {
        let bytes = l.as_bytes();
        // keep a valid UTF-8 piece: a prefix of a prefix literal (or a suffix
        // of a suffix literal) still occurs in every match
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t.to_owned(),
            Err(e) => match prefix {
                false => {
                    let mut start = 0;
                    while start < bytes.len() && std::str::from_utf8(&bytes[start..]).is_err() {
                        start += 1;
                    }
                    String::from_utf8_lossy(&bytes[start..]).into_owned()
                }
                true => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
            },
        };
        if !atom_worthy(&text) {
            return None;
        }
        let low = lowercase(&text);
        if !out.contains(&low) {
            out.push(low);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atoms(re: &str) -> Option<Vec<String>> {
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(re)
            .unwrap();
        regex_atoms(&hir)
    }

    #[test]
    fn extracts_required_literals() {
        let a = atoms("foo[0-9]+bar").unwrap();
        assert!(
            a == vec!["foo".to_string()] || a == vec!["bar".to_string()],
            "{a:?}"
        );
        let a = atoms("(?i)select.+from").unwrap();
        // case variants include Unicode folds such as 'ſ' (long s) for 's'
        assert!(
            a.iter()
                .any(|x| "select".starts_with(x.as_str()) || "from".ends_with(x.as_str())),
            "{a:?}"
        );
        assert_eq!(atoms(".*"), None);
        assert_eq!(atoms("a|bc"), None, "too short");
        let alt = atoms("(alpha|beta)gamma").unwrap();
        assert!(alt.len() == 2 || alt == vec!["gamma".to_string()]);
    }

    #[test]
    fn extracts_inner_literals() {
        // neither prefix nor suffix is selective; the middle is
        let a = atoms(r"\.exe\s+[^x]{0,64}werfaultsecure\.exe\s+\d{2,10}").unwrap();
        assert!(
            a.iter()
                .all(|x| "werfaultsecure.exe".contains(x.as_str()) && x.len() > 4),
            "{a:?}"
        );
        let a = atoms(r"[a-z]+://(evil|bad)host\.[a-z]+").unwrap();
        assert!(
            a.iter()
                .all(|x| x.contains("evilhost") || x.contains("badhost")),
            "{a:?}"
        );
        // a case-insensitive middle: variants folded to lower case
        let a = atoms(r"(?i)\d+\s+mimikatz\s+\d+").unwrap();
        assert!(
            a.iter().all(|x| "mimikatz".starts_with(x.as_str())),
            "{a:?}"
        );
        // every match contains one of the atoms
        let re =
            regex::Regex::new(r#"(?i)\.exe["']?\s+[^"]{0,64}werfaultsecure\.exe["']?\s+\d{2,10}"#)
                .unwrap();
        let hay = r"c:\x\wsass.exe C:\Windows\WerFaultSecure.exe 1234";
        assert!(re.is_match(hay));
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(re.as_str())
            .unwrap();
        let a = regex_atoms(&hir).unwrap();
        let low = hay.to_lowercase();
        assert!(a.iter().any(|x| low.contains(x.as_str())), "{a:?}");
    }

    #[test]
    fn best_run_is_longest() {
        assert_eq!(best_run(["ab", "Cmd.exe", "x"]), Some("cmd.exe".into()));
        assert_eq!(best_run(["ab"]), None);
    }
}
