//! Explanations: for one rule and one event, which searches, items and
//! values matched and which did not. Built with the reference evaluator (no
//! prefilter), so it shows what the specification gives.

use std::fmt;

use qalqan_core::Event;

use crate::compile::{Item, SearchExpr};
use crate::engine::Engine;
use crate::eval::{render_elem, Ctx, Elem, FieldVal};
use crate::route::RuleIdx;
use crate::rule::LogsourceSpec;

/// A node of a search's AND/OR tree.
#[derive(Debug, Clone)]
pub enum Node {
    And { matched: bool, children: Vec<Node> },
    Or { matched: bool, children: Vec<Node> },
    Item(ItemReport),
}

impl Node {
    pub fn matched(&self) -> bool {
        match self {
            Node::And { matched, .. } | Node::Or { matched, .. } => *matched,
            Node::Item(i) => i.matched,
        }
    }
}

/// One detection item.
#[derive(Debug, Clone)]
pub struct ItemReport {
    /// Key as written after pipelines (`field|modifiers`).
    pub key: String,
    pub field: String,
    /// The event's value, as text (None when the field is missing).
    pub event_value: Option<String>,
    /// `all` (AND) instead of any (OR) over the values.
    pub all: bool,
    pub matched: bool,
    /// Each value with its matchers and whether it matched.
    pub values: Vec<ValueReport>,
}

/// One value of an item.
#[derive(Debug, Clone)]
pub struct ValueReport {
    pub value: String,
    /// What the value checks after modifiers (e.g. "contains 'x'").
    pub checks: Vec<String>,
    pub matched: bool,
}

/// One search identifier.
#[derive(Debug, Clone)]
pub struct SearchReport {
    pub name: String,
    pub tree: Node,
}

/// The whole explanation.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub rule: RuleIdx,
    pub id: Option<String>,
    pub title: String,
    pub rule_logsource: LogsourceSpec,
    pub event_logsource: LogsourceSpec,
    /// Does the rule's logsource route it to this event?
    pub logsource_applies: bool,
    /// Does the condition hold (ignoring the logsource)?
    pub condition_holds: bool,
    pub searches: Vec<SearchReport>,
    pub filters: Vec<String>,
}

impl Explanation {
    /// The rule fires for the event: logsource applies and condition holds.
    pub fn fires(&self) -> bool {
        self.logsource_applies && self.condition_holds
    }
}

impl Engine {
    /// Explains rule `idx` against `event`.
    pub fn explain(&self, idx: RuleIdx, event: &Event) -> Explanation {
        let r = self.rule(idx);
        let ev_ls = LogsourceSpec {
            category: event.logsource.category.clone(),
            product: event.logsource.product.clone(),
            service: event.logsource.service.clone(),
            definition: None,
        };
        self.with_naive_ctx(event, |ctx| {
            let searches = r
                .compiled
                .searches
                .iter()
                .zip(&r.compiled.search_names)
                .map(|(s, name)| SearchReport {
                    name: name.clone(),
                    tree: self.node(ctx, s),
                })
                .collect();
            Explanation {
                rule: idx,
                id: r.meta.id.clone(),
                title: r.meta.title.clone(),
                rule_logsource: r.logsource.clone(),
                logsource_applies: r.logsource.contains(&ev_ls),
                event_logsource: ev_ls,
                condition_holds: ctx.eval_rule(&r.compiled),
                searches,
                filters: r.filters.clone(),
            }
        })
    }

    fn node(&self, ctx: &Ctx<'_>, s: &SearchExpr) -> Node {
        match s {
            SearchExpr::And(v) => {
                let children: Vec<Node> = v.iter().map(|x| self.node(ctx, x)).collect();
                Node::And {
                    matched: children.iter().all(Node::matched),
                    children,
                }
            }
            SearchExpr::Or(v) => {
                let children: Vec<Node> = v.iter().map(|x| self.node(ctx, x)).collect();
                Node::Or {
                    matched: children.iter().any(Node::matched),
                    children,
                }
            }
            SearchExpr::Item(i) => Node::Item(self.item_report(ctx, i)),
        }
    }

    fn item_report(&self, ctx: &Ctx<'_>, i: &Item) -> ItemReport {
        let values: Vec<ValueReport> = i
            .values
            .iter()
            .map(|v| ValueReport {
                value: v.display.clone(),
                checks: v.alts.iter().map(|m| m.to_string()).collect(),
                matched: v.alts.iter().any(|m| ctx.eval_matcher(i.field, m)),
            })
            .collect();
        let event_value = ctx.get(i.field).map(|v| {
            let mut s = String::new();
            match v {
                FieldVal::Value(v) => s.push_str(&v.to_string()),
                FieldVal::Str(x) => s.push_str(x),
                FieldVal::Time(t) => {
                    render_elem(Elem::Time(t), &mut s);
                }
            }
            s
        });
        ItemReport {
            key: i.key.clone(),
            field: self.field_name(i.field).to_owned(),
            event_value,
            all: i.all,
            matched: ctx.eval_item(i),
            values,
        }
    }
}

fn mark(b: bool) -> &'static str {
    if b {
        "MATCH"
    } else {
        "no   "
    }
}

fn ls(l: &LogsourceSpec) -> String {
    let parts: Vec<String> = [
        ("product", &l.product),
        ("service", &l.service),
        ("category", &l.category),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "(any)".into()
    } else {
        parts.join(" ")
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, n: &Node, depth: usize) -> fmt::Result {
    let pad = "  ".repeat(depth);
    match n {
        Node::And { matched, children } | Node::Or { matched, children } => {
            let op = if matches!(n, Node::And { .. }) {
                "all of"
            } else {
                "any of"
            };
            writeln!(f, "{pad}[{}] {op}:", mark(*matched))?;
            for c in children {
                write_node(f, c, depth + 1)?;
            }
            Ok(())
        }
        Node::Item(i) => {
            let shown = match &i.event_value {
                Some(v) if v.chars().count() > 160 => {
                    format!("'{}…'", v.chars().take(160).collect::<String>())
                }
                Some(v) => format!("'{v}'"),
                None => "(missing)".into(),
            };
            writeln!(
                f,
                "{pad}[{}] {} ({}{}) = {shown}",
                mark(i.matched),
                i.key,
                i.field,
                if i.all { ", all values" } else { "" }
            )?;
            for v in &i.values {
                writeln!(
                    f,
                    "{pad}    [{}] {} → {}",
                    mark(v.matched),
                    v.value,
                    v.checks.join(" | ")
                )?;
            }
            Ok(())
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rule {} \"{}\"",
            self.id.as_deref().unwrap_or("-"),
            self.title
        )?;
        writeln!(
            f,
            "logsource: rule {} / event {} → {}",
            ls(&self.rule_logsource),
            ls(&self.event_logsource),
            if self.logsource_applies {
                "applies"
            } else {
                "does NOT apply"
            }
        )?;
        if !self.filters.is_empty() {
            writeln!(f, "filters applied: {}", self.filters.join(", "))?;
        }
        for s in &self.searches {
            writeln!(f, "search {} [{}]", s.name, mark(s.tree.matched()))?;
            write_node(f, &s.tree, 1)?;
        }
        writeln!(
            f,
            "condition: {} → rule {}",
            if self.condition_holds {
                "true"
            } else {
                "false"
            },
            if self.fires() {
                "FIRES"
            } else {
                "does not fire"
            }
        )
    }
}
