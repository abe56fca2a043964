//! Value modifiers (Sigma 2.1 modifiers appendix) and pySigma's long
//! aliases. Unknown names are errors: a rule whose modifier we do not know
//! cannot be honoured, and guessing would be an approximation.

use std::fmt;

/// One value modifier, as written after `|` in a detection key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    // generic
    All,
    StartsWith,
    EndsWith,
    Contains,
    Exists,
    Cased,
    Neq,
    // string
    Windash,
    Re,
    ReIgnoreCase,
    ReMultiline,
    ReDotAll,
    Base64,
    Base64Offset,
    Utf16Le,
    Utf16Be,
    Utf16,
    // numeric
    Lt,
    Lte,
    Gt,
    Gte,
    // time parts
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    // ip
    Cidr,
    // specific
    Expand,
    FieldRef,
}

/// A time part extracted by the time modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Modifier {
    /// Parses one modifier name. `wide` is the appendix's alias of
    /// `utf16le`; `ignorecase`, `multiline` and `dotall` are pySigma's long
    /// forms of the `re` flags `i`, `m` and `s`.
    pub fn parse(name: &str) -> Option<Modifier> {
        use Modifier::*;
        Some(match name {
            "all" => All,
            "startswith" => StartsWith,
            "endswith" => EndsWith,
            "contains" => Contains,
            "exists" => Exists,
            "cased" => Cased,
            "neq" => Neq,
            "windash" => Windash,
            "re" => Re,
            "i" | "ignorecase" => ReIgnoreCase,
            "m" | "multiline" => ReMultiline,
            "s" | "dotall" => ReDotAll,
            "base64" => Base64,
            "base64offset" => Base64Offset,
            "utf16le" | "wide" => Utf16Le,
            "utf16be" => Utf16Be,
            "utf16" => Utf16,
            "lt" => Lt,
            "lte" => Lte,
            "gt" => Gt,
            "gte" => Gte,
            "minute" => Minute,
            "hour" => Hour,
            "day" => Day,
            "week" => Week,
            "month" => Month,
            "year" => Year,
            "cidr" => Cidr,
            "expand" => Expand,
            "fieldref" => FieldRef,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Modifier::*;
        match self {
            All => "all",
            StartsWith => "startswith",
            EndsWith => "endswith",
            Contains => "contains",
            Exists => "exists",
            Cased => "cased",
            Neq => "neq",
            Windash => "windash",
            Re => "re",
            ReIgnoreCase => "i",
            ReMultiline => "m",
            ReDotAll => "s",
            Base64 => "base64",
            Base64Offset => "base64offset",
            Utf16Le => "utf16le",
            Utf16Be => "utf16be",
            Utf16 => "utf16",
            Lt => "lt",
            Lte => "lte",
            Gt => "gt",
            Gte => "gte",
            Minute => "minute",
            Hour => "hour",
            Day => "day",
            Week => "week",
            Month => "month",
            Year => "year",
            Cidr => "cidr",
            Expand => "expand",
            FieldRef => "fieldref",
        }
    }

    pub fn time_part(self) -> Option<TimePart> {
        Some(match self {
            Modifier::Minute => TimePart::Minute,
            Modifier::Hour => TimePart::Hour,
            Modifier::Day => TimePart::Day,
            Modifier::Week => TimePart::Week,
            Modifier::Month => TimePart::Month,
            Modifier::Year => TimePart::Year,
            _ => return None,
        })
    }
}

impl fmt::Display for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Splits a detection key `field|mod1|mod2` into the field name (None for
/// keyword items written `'|all'`) and its modifiers. Returns the first
/// unknown modifier name as the error.
pub fn split_key(key: &str) -> Result<(Option<String>, Vec<Modifier>), String> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or_default();
    let mut mods = Vec::new();
    for p in parts {
        match Modifier::parse(p) {
            Some(m) => mods.push(m),
            None => return Err(p.to_owned()),
        }
    }
    let field = (!field.is_empty()).then(|| field.to_owned());
    Ok((field, mods))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_unknowns() {
        assert_eq!(Modifier::parse("wide"), Some(Modifier::Utf16Le));
        assert_eq!(Modifier::parse("ignorecase"), Some(Modifier::ReIgnoreCase));
        assert_eq!(Modifier::parse("dotall"), Some(Modifier::ReDotAll));
        assert_eq!(Modifier::parse("multiline"), Some(Modifier::ReMultiline));
        assert_eq!(
            Modifier::parse("Contains"),
            None,
            "modifiers are lower case"
        );
        assert_eq!(split_key("a|contains|bogus"), Err("bogus".into()));
        assert_eq!(split_key("|all").map(|(f, m)| (f, m.len())), Ok((None, 1)));
        assert_eq!(
            split_key("CommandLine|contains|all"),
            Ok((
                Some("CommandLine".into()),
                vec![Modifier::Contains, Modifier::All]
            ))
        );
    }
}
