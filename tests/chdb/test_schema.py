"""The modern DDL on a modern engine, and the Rust rows' encoding: every value
the sink sent reads back as the Rust code meant it, in both schemas."""

import pytest

from conftest import DATABASES, expected, insert_captured

EVENT_COLUMNS = [
    "event_id", "timestamp", "ingested", "agency", "observer_name",
    "observer_sequence", "host_name", "source_address", "source_port",
    "destination_address", "destination_port", "user_name", "process_name",
    "process_pid", "process_command_line", "event_dataset", "event_category",
    "event_action", "event_outcome", "url_original", "http_request_method",
    "http_response_status_code", "user_agent_original", "logsource_product",
    "logsource_service", "logsource_category", "message", "original", "tags",
    "fields",
]


def describe(engine, table):
    return {
        r["name"]: r["type"]
        for r in engine.rows(f"DESCRIBE TABLE qalqan.{table}")
    }


def test_modern_schema_uses_modern_types(engine):
    cols = describe(engine, "events")
    assert cols["timestamp"] == "DateTime64(6, 'UTC')"
    assert cols["time"] == "DateTime('UTC')"
    assert cols["agency"] == "LowCardinality(String)"
    assert cols["source_ip"] == "IPv6"
    assert cols["fields"] == "Map(String, String)"
    alerts = describe(engine, "alerts")
    assert alerts["evidence.timestamp"] == "Array(DateTime64(6, 'UTC'))"
    assert alerts["group_key"] == "Map(String, String)"
    engines = {
        r["name"]: r["engine_full"]
        for r in engine.rows(
            "SELECT name, engine_full FROM system.tables WHERE database = 'qalqan'"
        )
    }
    assert "TTL time + toIntervalDay(90)" in engines["events"]
    assert "TTL time + toIntervalDay(365)" in engines["alerts"]
    assert "non_replicated_deduplication_window = 1000" in engines["events"]
    assert engines["alerts"].startswith("ReplacingMergeTree(created)")
    indexes = {
        r["name"]
        for r in engine.rows(
            "SELECT name FROM system.data_skipping_indices WHERE database = 'qalqan' AND table = 'events'"
        )
    }
    assert {"source_ip_bloom", "user_name_bloom", "event_id_bloom"} <= indexes
    codecs = {
        r["name"]: r["compression_codec"]
        for r in engine.rows(
            "SELECT name, compression_codec FROM system.columns WHERE database = 'qalqan' AND table = 'events'"
        )
    }
    assert codecs["original"] == "CODEC(ZSTD(3))"
    assert codecs["timestamp"] == "CODEC(DoubleDelta, ZSTD(1))"


def test_every_event_reads_back_as_sent(engine):
    want = {e["event_id"]: e for e in expected("events.expected.jsonl")}
    got = engine.rows(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM qalqan.events FINAL ORDER BY event_id"
    )
    assert len(got) == len(want)
    for row in got:
        exp = want[row["event_id"]]
        for col in EVENT_COLUMNS:
            assert row[col] == exp[col], f"{row['event_id']}.{col}"


ALERT_COLUMNS = [
    "id", "agency", "rule_id", "rule_title", "rule_author", "rule_level",
    "rule_tags", "rule_kind", "group_key", "source_ips", "user_names",
    "host_names", "urls", "window_start", "window_end", "count", "value",
    "suppressed", "evidence.event_id", "evidence.timestamp",
    "evidence.original", "created",
]


def test_every_alert_reads_back_and_the_replay_collapses(engine):
    want = {a["id"]: a for a in expected("alerts.expected.jsonl")}
    cols = ", ".join(f"`{c}`" for c in ALERT_COLUMNS)
    got = engine.rows(f"SELECT {cols} FROM qalqan.alerts FINAL ORDER BY id")
    assert sorted(r["id"] for r in got) == sorted(want)
    for row in got:
        exp = want[row["id"]]
        for col in ALERT_COLUMNS:
            assert row[col] == exp[col], f"{row['id']}.{col}"


@pytest.mark.parametrize("dialect", ["modern", "legacy"])
def test_derived_columns_agree_between_schemas(engine, dialect):
    db = DATABASES[dialect]
    rows = engine.rows(
        f"""SELECT event_id, toString(time) AS time, source_address, destination_address,
                  fields_values[indexOf(fields_keys, 'http.version')] AS http_version
           FROM {db}.events FINAL ORDER BY event_id"""
    )
    want = {e["event_id"]: e for e in expected("events.expected.jsonl")}
    assert len(rows) == len(want)
    for row in rows:
        exp = want[row["event_id"]]
        assert row["time"] == exp["timestamp"][:19]
        assert row["source_address"] == exp["source_address"]
        assert row["destination_address"] == exp["destination_address"]
        assert row["http_version"] == exp["fields"].get("http.version", "")


def test_legacy_schema_stores_microseconds_as_integers(engine):
    row = engine.rows(
        "SELECT e.timestamp AS legacy, toUnixTimestamp64Micro(m.timestamp) AS modern "
        "FROM qalqan_legacy.events AS e INNER JOIN qalqan.events AS m USING event_id LIMIT 1"
    )[0]
    assert row["legacy"] == row["modern"]


def test_rollups_count_events_and_distinct_alerts(engine, facts):
    per_agency = {}
    for e in expected("events.expected.jsonl"):
        per_agency[e["agency"]] = per_agency.get(e["agency"], 0) + 1
    for db in DATABASES.values():
        got = {
            r["agency"]: r["events"]
            for r in engine.rows(
                f"SELECT agency, sum(events) AS events FROM {db}.events_5m GROUP BY agency"
            )
        }
        assert got == per_agency, db
        assert int(engine.value(f"SELECT sum(unparsed) FROM {db}.events_5m")) == 1
        alerts = {
            r["agency"]: r["n"]
            for r in engine.rows(
                f"SELECT agency, uniqExactMerge(alerts) AS n FROM {db}.alerts_5m GROUP BY agency"
            )
        }
        assert alerts == facts["alerts"], db


def test_a_retried_insert_is_dropped_on_modern_and_collapses_on_legacy(engine, facts):
    before = int(engine.value("SELECT count() FROM qalqan.events"))
    before_5m = int(engine.value("SELECT sum(events) FROM qalqan.events_5m"))
    insert_captured(engine, "qalqan", "events")
    insert_captured(engine, "qalqan", "alerts")
    assert int(engine.value("SELECT count() FROM qalqan.events")) == before
    assert int(engine.value("SELECT sum(events) FROM qalqan.events_5m")) == before_5m
    assert int(engine.value("SELECT count() FROM qalqan.alerts FINAL")) == len(
        expected("alerts.expected.jsonl")
    )

    insert_captured(engine, "qalqan_legacy", "events")
    total = facts["total_events"]
    assert int(engine.value("SELECT count() FROM qalqan_legacy.events FINAL")) == total
    engine.execute("OPTIMIZE TABLE qalqan_legacy.events FINAL")
    assert int(engine.value("SELECT count() FROM qalqan_legacy.events")) == total
