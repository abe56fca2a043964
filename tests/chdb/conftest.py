"""Shared fixtures: one in-process ClickHouse (chdb) holding the incident
scenario twice, in the modern schema (database `qalqan`) and in the legacy
schema (`qalqan_legacy`, as on a server upgraded from 18.16), loaded from the
exact RowBinary bytes the Rust sink sends.

The fixtures are written by the Rust test `clickhouse_chdb_fixture`;
`tests/chdb/run` runs it before pytest.
"""

import json
import os
import pathlib
import re
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(
    os.environ.get("QALQAN_CHDB_FIXTURES") or ROOT / ".work" / "chdb-fixtures"
)
COOKBOOK = ROOT / "docs" / "cookbook"
DATABASES = {"modern": "qalqan", "legacy": "qalqan_legacy"}


def fixture_path(name):
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(
            f"fixture missing: {path}; run tests/chdb/run (it writes the fixtures "
            "with `cargo test -p qalqan-detector --test clickhouse_chdb_fixture`)"
        )
    return path


class Engine:
    """A chdb session with helpers that return parsed rows."""

    def __init__(self, path):
        from chdb import session

        self.session = session.Session(str(path))
        # Plain JSON numbers for 64-bit integers.
        self.execute("SET output_format_json_quote_64bit_integers = 0")

    def execute(self, sql, params=None):
        return self.session.query(sql, "TSV", params=params).bytes().decode()

    def rows(self, sql, params=None):
        out = self.session.query(sql, "JSONEachRow", params=params).bytes().decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def value(self, sql, params=None):
        return self.execute(sql, params).strip()


def load_schema(engine, dialect):
    text = fixture_path(f"schema_{dialect}.sql").read_text()
    statements = [s.strip() for s in text.split(";\n\n") if s.strip()]
    for stmt in statements:
        engine.execute(stmt)
    return statements


def insert_captured(engine, database, table):
    """Replays the sink's INSERT with its captured body."""
    sql = fixture_path(f"{table}.insert.sql").read_text().strip()
    data = fixture_path(f"{table}.rowbinary")
    prefix = f"INSERT INTO `{table}`("
    assert sql.startswith(prefix) and sql.endswith(" FORMAT RowBinary"), sql
    columns = sql[len("INSERT INTO `" + table + "`") : -len(" FORMAT RowBinary")]
    engine.execute(
        f"INSERT INTO {database}.`{table}`{columns} FROM INFILE '{data}' FORMAT RowBinary"
    )


@pytest.fixture(scope="session")
def engine():
    # chdb allows one session per process: both schemas live in it.
    with tempfile.TemporaryDirectory(prefix="qalqan-chdb-") as tmp:
        eng = Engine(pathlib.Path(tmp) / "db")
        for dialect, database in DATABASES.items():
            load_schema(eng, dialect)
            insert_captured(eng, database, "events")
            insert_captured(eng, database, "alerts")
        yield eng


@pytest.fixture(scope="session")
def facts():
    return json.loads(fixture_path("facts.json").read_text())["facts"]


def expected(name):
    return [json.loads(l) for l in fixture_path(name).read_text().splitlines() if l.strip()]


def cookbook_queries():
    return sorted(p.name for p in COOKBOOK.glob("*.sql"))


def cookbook_sql(name):
    return (COOKBOOK / name).read_text()


PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+):([^{}]+)\}")


def placeholders(sql):
    """The parameter names a query declares, comments excluded."""
    code = "\n".join(l.split("--", 1)[0] for l in sql.splitlines())
    return {m.group(1) for m in PLACEHOLDER.finditer(code)}
