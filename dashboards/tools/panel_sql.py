#!/usr/bin/env python3
"""The ClickHouse SQL of the provisioned Grafana dashboards, with the
`grafana-clickhouse-datasource` plugin's macros expanded, so tests can run
it on a real server (18.16 over HTTP, a modern engine in-process with chdb).

    dashboards/tools/panel_sql.py --from '2026-03-02 00:00:00' \\
        --to '2026-03-03 00:00:00' --interval 300 --var agency=egov

prints a JSON array, one object per ClickHouse query in
dashboards/grafana/dashboards/*.json (panel targets and query variables):
`{"dashboard", "uid", "panel", "ref", "sql"}`, where `panel` is the panel
title (or `var:NAME` for a template variable) and `sql` the expanded text.

The expansion follows the plugin (v4) for the macros qalqan's panels use;
times are whole UTC seconds:

| macro                         | becomes                                              |
|-------------------------------|------------------------------------------------------|
| `$__timeFilter(col)`          | `col >= toDateTime(FROM) AND col <= toDateTime(TO)`  |
| `$__fromTime` / `$__toTime`   | `toDateTime(FROM)` / `toDateTime(TO)`                |
| `$__timeInterval(col)`        | `toStartOfInterval(toDateTime(col), INTERVAL N second)` |
| `$__interval_s`               | `N` (the panel's interval in seconds)                |
| `${name}`, `$name`            | the variable's value, verbatim                       |
| `${name:sqlstring}`           | the value as a quoted SQL string (`'it\\'s'`)        |
| `${name:raw}`                 | the value, verbatim                                  |

FROM and TO are Unix seconds. Note that ClickHouse 18.16 has no
`toStartOfInterval`, so panels that must run there bucket with
`$__interval_s` instead of `$__timeInterval` (the live test would fail
otherwise). An unknown macro or variable is an error, never left in place.

Python 3 standard library only; also imported by tests/chdb.
"""

import argparse
import datetime
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards" / "grafana" / "dashboards"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"

_MACRO_CALL = re.compile(r"\$__(timeFilter|timeInterval)\(\s*([^()]+?)\s*\)")
_MACRO_WORD = re.compile(r"\$__(fromTime|toTime|interval_s)\b")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ExpansionError(ValueError):
    """A macro or variable the expander does not know."""


def sql_string(value):
    """A ClickHouse string literal (Grafana's `sqlstring` format)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def unix_seconds(text):
    """'YYYY-MM-DD HH:MM:SS' (UTC) or Unix seconds -> int."""
    text = str(text).strip()
    if text.isdigit():
        return int(text)
    when = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def expand(sql, time_from, time_to, interval_s=300, variables=None):
    """Expands the plugin's macros and dashboard variables in `sql`."""
    variables = variables or {}
    start, end = unix_seconds(time_from), unix_seconds(time_to)

    def call(m):
        name, column = m.group(1), m.group(2)
        if name == "timeFilter":
            return f"{column} >= toDateTime({start}) AND {column} <= toDateTime({end})"
        return f"toStartOfInterval(toDateTime({column}), INTERVAL {int(interval_s)} second)"

    def word(m):
        return {
            "fromTime": f"toDateTime({start})",
            "toTime": f"toDateTime({end})",
            "interval_s": str(int(interval_s)),
        }[m.group(1)]

    out = _MACRO_CALL.sub(call, sql)
    out = _MACRO_WORD.sub(word, out)
    leftover = re.search(r"\$__[A-Za-z_]+", out)
    if leftover:
        raise ExpansionError(f"unsupported macro {leftover.group(0)}")

    def variable(m):
        name = m.group(1) or m.group(3)
        fmt = m.group(2) or "raw"
        if name not in variables:
            raise ExpansionError(f"no value for dashboard variable ${name}")
        value = str(variables[name])
        if fmt == "sqlstring":
            return sql_string(value)
        if fmt == "raw":
            return value
        raise ExpansionError(f"unsupported variable format ${{{name}:{fmt}}}")

    return _VARIABLE.sub(variable, _strip_string_dollars(out))


def _strip_string_dollars(sql):
    # SQL with a literal `$` inside quotes would be mistaken for a variable;
    # qalqan's panels have none, and refusing is safer than guessing.
    for literal in re.findall(r"'(?:[^'\\]|\\.)*'", sql):
        if "$" in literal:
            raise ExpansionError(f"`$` inside a string literal: {literal}")
    return sql


def is_clickhouse(datasource):
    return isinstance(datasource, dict) and datasource.get("type") == CLICKHOUSE_TYPE


def dashboard_files():
    return sorted(DASHBOARDS.glob("*.json"))


def clickhouse_queries(path):
    """(panel, ref, raw SQL) of every ClickHouse query in one dashboard."""
    board = json.loads(pathlib.Path(path).read_text())
    out = []
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query" and is_clickhouse(var.get("datasource")):
            query = var.get("query")
            sql = query.get("rawSql") if isinstance(query, dict) else query
            out.append((f"var:{var['name']}", "var", sql))
    for panel in _panels(board.get("panels", [])):
        default = panel.get("datasource")
        for target in panel.get("targets", []):
            ds = target.get("datasource", default)
            if is_clickhouse(ds):
                out.append((panel.get("title", ""), target.get("refId", ""), target["rawSql"]))
    return board, out


def _panels(panels):
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def all_queries(time_from, time_to, interval_s=300, variables=None):
    """Every ClickHouse query of every dashboard, expanded."""
    result = []
    for path in dashboard_files():
        board, queries = clickhouse_queries(path)
        for panel, ref, sql in queries:
            result.append(
                {
                    "dashboard": path.name,
                    "uid": board.get("uid", ""),
                    "panel": panel,
                    "ref": ref,
                    "sql": expand(sql, time_from, time_to, interval_s, variables),
                }
            )
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="time_from", required=True, help="UTC 'YYYY-MM-DD HH:MM:SS' or Unix seconds")
    ap.add_argument("--to", dest="time_to", required=True)
    ap.add_argument("--interval", type=int, default=300, help="$__interval_s (default 300)")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="dashboard variable")
    args = ap.parse_args(argv)
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--var {item}: use NAME=VALUE")
        variables[name] = value
    try:
        queries = all_queries(args.time_from, args.time_to, args.interval, variables)
    except (ExpansionError, ValueError, KeyError) as e:
        print(f"panel_sql: {e}", file=sys.stderr)
        return 2
    json.dump(queries, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
