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
pub fn regex_atoms(hir: &regex_syntax::hir::Hir) -> Option<Vec<String>> {
    let best = [true, false]
        .into_iter()
        .filter_map(|prefix| {
            let mut ex = Extractor::new();
            let kind = if prefix {
                ExtractKind::Prefix
            } else {
                ExtractKind::Suffix
            };
            ex.kind(kind).limit_total(64).limit_class(8).limit_repeat(4);
            let seq = ex.extract(hir);
            seq_atoms(&seq, prefix)
        })
        .max_by_key(|atoms| atoms.iter().map(String::len).min().unwrap_or(0));
    best
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
    fn best_run_is_longest() {
        assert_eq!(best_run(["ab", "Cmd.exe", "x"]), Some("cmd.exe".into()));
        assert_eq!(best_run(["ab"]), None);
    }
}
