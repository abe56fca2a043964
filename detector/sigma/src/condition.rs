//! The condition grammar of the rules specification.
//!
//! ```text
//! expr     := and ('or' and)*
//! and      := unary ('and' unary)*
//! unary    := 'not' unary | primary
//! primary  := '(' expr ')' | quant 'of' target | identifier
//! quant    := '1' | 'any' | 'all'
//! target   := 'them' | pattern            (pattern may contain '*')
//! ```
//!
//! Precedence, least to most binding: `or`, `and`, `not`, `x of`,
//! parentheses — as the specification lists. Operators are lower case, as in
//! pySigma. `any of` is pySigma's synonym of `1 of`.
//!
//! Legacy aggregations (`selection | count() by x > 5`) and `near` belong to
//! Sigma 1.0; they are rejected with a pointer to correlation rules.

use std::fmt;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// A search identifier by name.
    Ident(String),
    /// `1 of X` (`all == false`) or `all of X`.
    Of {
        all: bool,
        target: OfTarget,
    },
}

/// What an `x of` selector ranges over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfTarget {
    /// `them`: every search identifier not starting with `_`.
    Them,
    /// A pattern with `*` wildcards.
    Pattern(String),
}

/// Why a condition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub message: String,
    /// True for Sigma 1.0 aggregations (`| count() ...`, `near`).
    pub legacy_aggregation: bool,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message every legacy-aggregation rejection carries.
pub const LEGACY_AGGREGATION_HINT: &str = "legacy Sigma 1.0 aggregation in the condition \
(`| count() ...`, `| sum()`, `near`) is not part of Sigma 2.1: express it as a Sigma \
correlation rule (event_count, value_count, value_sum, temporal, ...) that references \
this detection rule";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    LParen,
    RParen,
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, ConditionError> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    for c in text.chars() {
        match c {
            '(' => {
                flush(&mut word, &mut out);
                out.push(Token::LParen);
            }
            ')' => {
                flush(&mut word, &mut out);
                out.push(Token::RParen);
            }
            '|' => {
                return Err(ConditionError {
                    message: LEGACY_AGGREGATION_HINT.to_owned(),
                    legacy_aggregation: true,
                })
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    Ok(out)
}

/// Parses one condition string.
pub fn parse(text: &str) -> Result<Cond, ConditionError> {
    let tokens = tokenize(text)?;
    if tokens
        .iter()
        .any(|t| matches!(t, Token::Word(w) if w == "near"))
    {
        return Err(ConditionError {
            message: LEGACY_AGGREGATION_HINT.to_owned(),
            legacy_aggregation: true,
        });
    }
    if tokens.is_empty() {
        return Err(err("empty condition"));
    }
    let mut p = Parser { tokens, pos: 0 };
    let cond = p.expr()?;
    if p.pos != p.tokens.len() {
        return Err(err(&format!(
            "unexpected '{}' after a complete expression",
            p.describe(p.pos)
        )));
    }
    Ok(cond)
}

fn err(msg: &str) -> ConditionError {
    ConditionError {
        message: msg.to_owned(),
        legacy_aggregation: false,
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

const RESERVED: [&str; 7] = ["and", "or", "not", "of", "them", "all", "any"];

impl Parser {
    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.pos) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn describe(&self, pos: usize) -> String {
        match self.tokens.get(pos) {
            Some(Token::LParen) => "(".into(),
            Some(Token::RParen) => ")".into(),
            Some(Token::Word(w)) => w.clone(),
            None => "end of condition".into(),
        }
    }

    fn expr(&mut self) -> Result<Cond, ConditionError> {
        let mut items = vec![self.and()?];
        while self.peek_word() == Some("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, ConditionError> {
        let mut items = vec![self.unary()?];
        while self.peek_word() == Some("and") {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::And(items)
        })
    }

    fn unary(&mut self) -> Result<Cond, ConditionError> {
        if self.peek_word() == Some("not") {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, ConditionError> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::LParen) => {
                self.pos += 1;
                let inner = self.expr()?;
                match self.tokens.get(self.pos) {
                    Some(Token::RParen) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(err(&format!(
                        "expected ')' but found '{}'",
                        self.describe(self.pos)
                    ))),
                }
            }
            Some(Token::RParen) => Err(err("unexpected ')'")),
            None => Err(err("condition ends where an operand was expected")),
            Some(Token::Word(w)) => {
                let next_is_of =
                    matches!(self.tokens.get(self.pos + 1), Some(Token::Word(n)) if n == "of");
                if next_is_of {
                    let all = match w.as_str() {
                        "1" | "any" => false,
                        "all" => true,
                        other => {
                            return Err(err(&format!(
                                "'{other} of' is not a Sigma quantifier (use '1 of', 'any of' or 'all of')"
                            )))
                        }
                    };
                    self.pos += 2;
                    let target = match self.tokens.get(self.pos) {
                        Some(Token::Word(t)) if t == "them" => OfTarget::Them,
                        Some(Token::Word(t)) if !RESERVED.contains(&t.as_str()) => {
                            OfTarget::Pattern(t.clone())
                        }
                        _ => {
                            return Err(err(&format!(
                            "expected 'them' or an identifier pattern after '{w} of', found '{}'",
                            self.describe(self.pos)
                        )))
                        }
                    };
                    self.pos += 1;
                    return Ok(Cond::Of { all, target });
                }
                if RESERVED.contains(&w.as_str()) {
                    return Err(err(&format!(
                        "unexpected '{w}' where an operand was expected"
                    )));
                }
                if w.contains('*') {
                    return Err(err(&format!(
                        "wildcard identifier '{w}' is only allowed after '1 of' or 'all of'"
                    )));
                }
                self.pos += 1;
                Ok(Cond::Ident(w))
            }
        }
    }
}

/// Glob match of an `x of` pattern against a search identifier: `*` matches
/// any run of characters, everything else literally, over the whole name.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Search identifiers an `x of` target selects, in definition order.
///
/// Identifiers starting with `_` are left out of `them` (specification) and
/// of patterns (the specification defines patterns as "the same as them,
/// restricted", and pySigma excludes them too) — unless the pattern itself
/// starts with `_`, which can only mean the author wants those.
pub fn select<'a>(target: &OfTarget, names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    match target {
        OfTarget::Them => names.filter(|n| !n.starts_with('_')).collect(),
        OfTarget::Pattern(p) => {
            let explicit_underscore = p.starts_with('_');
            names
                .filter(|n| explicit_underscore || !n.starts_with('_'))
                .filter(|n| pattern_matches(p, n))
                .collect()
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::And(items) | Cond::Or(items) => {
                let op = if matches!(self, Cond::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (i, c) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str(")")
            }
            Cond::Not(c) => write!(f, "not {c}"),
            Cond::Ident(n) => f.write_str(n),
            Cond::Of { all, target } => {
                let q = if *all { "all" } else { "1" };
                match target {
                    OfTarget::Them => write!(f, "{q} of them"),
                    OfTarget::Pattern(p) => write!(f, "{q} of {p}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Cond {
        Cond::Ident(s.into())
    }

    #[test]
    fn precedence_or_and_not() {
        // a or b and not c  ==  a or (b and (not c))
        assert_eq!(
            parse("a or b and not c").unwrap(),
            Cond::Or(vec![
                id("a"),
                Cond::And(vec![id("b"), Cond::Not(Box::new(id("c")))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c").unwrap(),
            Cond::And(vec![Cond::Or(vec![id("a"), id("b")]), id("c")])
        );
        assert_eq!(
            parse("not not a").unwrap(),
            Cond::Not(Box::new(Cond::Not(Box::new(id("a")))))
        );
    }

    #[test]
    fn selectors() {
        assert_eq!(
            parse("1 of selection_* and not all of filter*").unwrap(),
            Cond::And(vec![
                Cond::Of {
                    all: false,
                    target: OfTarget::Pattern("selection_*".into())
                },
                Cond::Not(Box::new(Cond::Of {
                    all: true,
                    target: OfTarget::Pattern("filter*".into())
                }))
            ])
        );
        assert_eq!(
            parse("any of them").unwrap(),
            Cond::Of {
                all: false,
                target: OfTarget::Them
            }
        );
        assert!(parse("2 of them").is_err());
        assert!(parse("selection*").is_err());
    }

    #[test]
    fn multiline_and_errors() {
        assert!(parse("selection and\n  (\n 1 of sel_*\n )").is_ok());
        assert!(parse("a and").is_err());
        assert!(parse("(a or b").is_err());
        assert!(parse("a b").is_err());
        assert!(parse("").is_err());
        let e = parse("selection | count() by src_ip > 10").unwrap_err();
        assert!(e.legacy_aggregation);
        assert!(e.message.contains("correlation"));
        assert!(parse("a near b").unwrap_err().legacy_aggregation);
    }

    #[test]
    fn pattern_selection_rules() {
        let names = [
            "selection",
            "selection_x",
            "_filter_a",
            "filter_main_mdadm.conf",
            "sel|endswith",
        ];
        let sel = |t: OfTarget| select(&t, names.iter().copied());
        assert_eq!(
            sel(OfTarget::Them),
            vec![
                "selection",
                "selection_x",
                "filter_main_mdadm.conf",
                "sel|endswith"
            ]
        );
        assert_eq!(
            sel(OfTarget::Pattern("selection".into())),
            vec!["selection"]
        );
        assert_eq!(
            sel(OfTarget::Pattern("sel*".into())),
            vec!["selection", "selection_x", "sel|endswith"]
        );
        assert_eq!(
            sel(OfTarget::Pattern("*filter*".into())),
            vec!["filter_main_mdadm.conf"]
        );
        assert_eq!(sel(OfTarget::Pattern("_filter*".into())), vec!["_filter_a"]);
    }
}
