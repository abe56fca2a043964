//! qalqan-sigma: a Sigma 2.1 detection engine — parser, compiler and
//! evaluator, with pySigma-style processing pipelines and Sigma filters.
//!
//! # Shape
//!
//! * [`rule`] parses YAML documents into the rule AST (every attribute kept,
//!   custom ones too). Correlation documents are not compiled here: they are
//!   handed out raw through [`Engine::correlations`], and the rules they
//!   reference are found with [`Engine::find_rule`] (id or name).
//! * [`filter`] and [`pipeline`] rewrite the AST: filters add exceptions,
//!   pipelines map Sigma field names onto the event's ECS names, add
//!   conditions, change logsources and fill placeholders — at load time,
//!   never per event.
//! * [`compile`] turns each rule into matcher trees and finds, for the
//!   prefilter, the literals ("atoms") that must occur for the rule to match.
//! * [`engine`] routes events by logsource and runs the prefilter
//!   ([`route`]): per field, a SIMD presence check and an Aho-Corasick scan
//!   of the lower-cased value (or, for small atom sets, a case-folding
//!   table walk over the value itself when it is pure ASCII, see [`dense`])
//!   find every atom present, and exact numbers
//!   (`EventID`) are looked up by value; only rules whose trigger clauses
//!   all have an atom present (and the few rules without any atom) are
//!   evaluated ([`eval`]).
//!
//! ```no_run
//! use qalqan_sigma::{Engine, Pipeline};
//! let (engine, report) = Engine::builder()
//!     .pipeline(Pipeline::from_path("rules/pipelines/qalqan-linux.yml".as_ref()).unwrap())
//!     .load_paths(&["rules/"]);
//! for e in &report.rejected { eprintln!("{e}"); }
//! # let event: qalqan_core::Event = unimplemented!();
//! for idx in engine.evaluate(&event) {
//!     let rule = engine.rule(idx);
//!     println!("{} fired", rule.meta.title);
//! }
//! ```
//!
//! # Decisions where the specification leaves a choice
//!
//! Each is pinned by a test in `tests/conformance.rs`.
//!
//! * **Case.** String values match case-insensitively unless `cased`: both
//!   sides are lower-cased character by character (`char::to_lowercase`, no
//!   context rules), and `?` matches one character of the lower-cased text.
//!   Regular expressions are case-sensitive unless `re|i`.
//! * **Field names** are case-sensitive and exact (after pipeline mapping),
//!   as in pySigma; `CommandLine` does not match a field `commandline`.
//! * **null vs missing.** `field: null` matches when the field is missing or
//!   its value is JSON null (pySigma's backends emit "not exists" for null).
//!   `field: ''` matches only an empty string. `field|exists: true` holds
//!   for any present field, null and empty included (specification).
//! * **Numbers vs strings.** A numeric rule value equals an event number of
//!   the same value and an event string that spells it as a plain decimal
//!   (`"4624"`, `"4624.0"`; not `"0x1210"` or `"4.6e3"`). A string rule
//!   value compares with the decimal text of an event number (`'443'`
//!   matches 443), booleans as `true`/`false`. A number written with a
//!   string modifier (`contains`, ...) is used as its decimal text.
//! * **Lists in events** match when any element matches; each rule value is
//!   checked on its own, so `|all` values may match different elements.
//! * **Keywords** (field-less values) search the raw line, `event.original`,
//!   as a case-insensitive substring (implicit `*value*`); `startswith`,
//!   `endswith`, `re`, `cased` and the encodings apply to them as to fields.
//! * **Regular expressions** search (unanchored, like PCRE and pySigma's
//!   Python `re`); `^`/`$` anchor. `\d`, `\w`, `\s` and `\b` are
//!   Unicode-aware, as in Python 3. Look-around, back-references, atomic
//!   groups and possessive quantifiers need backtracking: such rules are
//!   rejected, never approximated. `re|startswith`/`re|endswith` anchor the
//!   expression to the value's start/end.
//! * **windash** follows pySigma: a `-` or `/` that starts a word (`\B[-/]\b`)
//!   matches any of `-`, `/`, en dash, em dash, horizontal bar.
//! * **neq** works on any value type (the appendix lists it as generic): the
//!   field must be present and not null, and some element must differ. Several
//!   values are OR-ed like every value list (pySigma); write `neq|all` for
//!   "differs from all".
//! * **Time parts** read `@timestamp`/`event.ingested` (UTC) or string fields
//!   (RFC 3339 or `YYYY-MM-DD HH:MM:SS`) as written, without time-zone
//!   conversion; `week` is the ISO week. They compare for equality, or with
//!   a following `lt`/`lte`/`gt`/`gte`.
//! * **cidr** matches IPv4 and IPv6 text; an IPv4-mapped IPv6 address
//!   (`::ffff:10.0.0.1`) counts as its IPv4 address.
//! * **fieldref** compares with the other field's value using the same case
//!   rule as strings (`cased` applies); `contains`/`startswith`/`endswith`
//!   after it compare by substring, prefix or suffix.
//! * **`x of` selectors** match whole identifiers with `*` wildcards;
//!   identifiers starting with `_` are left out of `them` and of patterns not
//!   themselves starting with `_`. `any of` equals `1 of`. A selector that
//!   selects nothing is an error.
//! * **Filters** follow pySigma: `(rule condition) and (filter condition)`.
//! * **Placeholders** (`|expand`) take their values from a pipeline's `vars`
//!   (via `value_placeholders`) or [`EngineBuilder::placeholder`]; a
//!   placeholder without values rejects the rule (specification).
//! * **Sigma 1.0 constructs** (`| count()` aggregations, `near`,
//!   `timeframe`, `action: global` collections) are rejected with a pointer
//!   to correlation rules.

pub mod compile;
pub mod condition;
pub mod dense;
pub mod engine;
pub mod eval;
pub mod explain;
pub mod filter;
pub mod literal;
pub mod memo;
pub mod modifier;
pub mod pattern;
pub mod pipeline;
pub mod route;
pub mod rule;
pub mod synth;
pub mod value;

pub use engine::{
    Engine, EngineBuilder, LoadError, LoadReport, Matches, RejectKind, RuleEntry, RuleText, Scratch,
};
pub use explain::Explanation;
pub use pipeline::{Pipeline, PipelineError};
pub use route::RuleIdx;
pub use rule::{LogsourceSpec, RawCorrelation, RuleMeta, SourceRef};
