"""Every ClickHouse query of the Grafana dashboards, with the plugin's macros
expanded by dashboards/tools/panel_sql.py, on a modern engine against the
incident scenario in both schemas. The same queries run on the live 18.16
server in detector/tests/dashboards_sql.rs (which adds a silent agency)."""

import calendar
import datetime
import sys

import pytest

from conftest import DATABASES, ROOT

sys.path.insert(0, str(ROOT / "dashboards" / "tools"))
import panel_sql  # noqa: E402

TESTED = set()
SOC = "soc-overview.json"
AGENCY = "agency-drilldown.json"


def secs(text):
    when = datetime.datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")
    return calendar.timegm(when.timetuple())


@pytest.fixture(params=list(DATABASES.values()))
def board(request, engine, facts):
    database = request.param
    start, end = secs(facts["incident_from"]), secs(facts["incident_to"])

    class Board:
        day0 = start
        frm, to = start, end

        def queries(self, time_from=start, time_to=end, **variables):
            values = {"agency": "egov", "silence_minutes": "30", **variables}
            return panel_sql.all_queries(time_from, time_to, 300, values)

        def rows(self, dashboard, panel, **kw):
            found = [q for q in self.queries(**kw) if q["dashboard"] == dashboard and q["panel"] == panel]
            assert len(found) == 1, f"{dashboard} has no ClickHouse panel {panel!r}"
            TESTED.add((dashboard, panel))
            return self.run(found[0]["sql"])

        def run(self, sql):
            engine.execute(f"USE {database}")
            try:
                return engine.rows(sql)
            finally:
                engine.execute("USE default")

        def value(self, sql):
            engine.execute(f"USE {database}")
            try:
                return engine.rows(sql)
            finally:
                engine.execute("USE default")

    return Board()


def totals(rows, key, value):
    out = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + int(r[value])
    return out


def test_every_query_runs(board):
    queries = board.queries()
    assert len(queries) >= 15
    for q in queries:
        board.run(q["sql"])


def test_soc_alerts_over_time(board, facts):
    rows = board.rows(SOC, "Alerts by level")
    assert totals(rows, "level", "alerts") == {"critical": 1, "high": 4, "medium": 1}
    rows = board.rows(SOC, "Alerts by agency")
    # The replayed brute-force alert is counted once.
    assert totals(rows, "agency", "alerts") == facts["alerts"]


def test_soc_top_rules(board, facts):
    rows = board.rows(SOC, "Top rules")
    assert len(rows) == sum(facts["alerts"].values())
    assert set(facts["egov_alert_titles"]) <= {r["rule_title"] for r in rows}
    assert all(r["alerts"] == 1 for r in rows)


def test_soc_top_attacking_sources(board, facts):
    rows = board.rows(SOC, "Top attacking sources")
    top = rows[0]
    assert top["source"] == facts["attacker"]
    assert top["alerts"] == 3
    assert top["events"] == facts["brute_force_failures"] + 40 + 2
    assert top["agencies"] == ["egov"]
    assert top["rules"] == [
        "SSH brute force",
        "Successful login after brute force",
        "Web vulnerability scanner",
    ]
    sprayer = [r for r in rows if r["source"] == facts["sprayer"]]
    assert len(sprayer) == 1 and sprayer[0]["agencies"] == ["mof"]


def test_soc_top_targets(board, facts):
    hosts = {r["host"]: r["alerts"] for r in board.rows(SOC, "Top targeted hosts")}
    assert hosts == {"portal1": facts["alerts"]["egov"], "fin-app1": facts["alerts"]["mof"]}
    urls = board.rows(SOC, "Top targeted URLs (error responses)")
    assert len(urls) == 10
    assert "/wp-login.php" in {r["url"] for r in urls}
    assert all(r["requests"] == 4 and r["sample_sources"] == [facts["attacker"]] for r in urls)


def test_soc_latest_critical(board, facts):
    rows = board.rows(SOC, "Latest critical alerts")
    assert len(rows) == 1
    assert rows[0]["rule_title"] == "Successful login after brute force"
    assert rows[0]["sources"] == facts["attacker"]
    assert "Accepted password for deploy" in rows[0]["evidence"]
    assert "Failed password" in rows[0]["evidence"]


def test_soc_silent_agencies(board):
    # At 12:30 both agencies had events minutes ago (the 12:17 cron run).
    noon = board.rows(SOC, "Agencies that went silent", time_to=board.day0 + 12 * 3600 + 1800)
    assert noon == []
    # Six hours after the day, both went quiet; mof last logged at 23:17.
    late = board.rows(SOC, "Agencies that went silent", time_to=board.to + 6 * 3600)
    got = {r["agency"]: r for r in late}
    assert set(got) == {"egov", "mof"}
    assert secs(got["mof"]["last_event"]) == board.day0 + 23 * 3600 + 17 * 60
    assert got["mof"]["silent_minutes"] == 6 * 60 + 43
    assert got["mof"]["silence_alerts"] == 0


def test_agency_variable(board):
    rows = board.rows(AGENCY, "var:agency")
    assert [r["agency"] for r in rows] == ["egov", "mof"]


def rollup_count(board):
    # Events whose 5-minute bucket is in the range, counted directly.
    return board.value(
        f"SELECT count() AS n FROM events WHERE agency = 'egov' "
        f"AND toStartOfFiveMinute(time) BETWEEN toDateTime({board.frm}) AND toDateTime({board.to})"
    )[0]["n"]


def test_agency_events_and_parse_quality(board):
    expected = rollup_count(board)
    datasets = totals(board.rows(AGENCY, "Events by dataset"), "dataset", "events")
    assert sum(datasets.values()) == expected
    assert {"nginx.access", "system.auth", "sudo", "cron", "iptables", "(none)"} <= set(datasets)
    quality = board.rows(AGENCY, "Parse quality")[0]
    assert quality["total_events"] == expected
    assert quality["unparsed_lines"] == 1
    assert 99 < quality["parsed_percent"] < 100
    by_source = board.rows(AGENCY, "Parse quality by source")
    assert by_source[0]["unparsed"] == 1 and by_source[0]["dataset"] == "(none)"
    unparsed = board.rows(AGENCY, "Unparsed lines")
    assert len(unparsed) == 1 and "garbled line" in unparsed[0]["original"]


def test_agency_alerts(board, facts):
    rows = board.rows(AGENCY, "Alerts by level")
    assert totals(rows, "level", "alerts") == {"critical": 1, "high": 3, "medium": 1}
    rows = board.rows(AGENCY, "Alerts")
    assert sorted(r["rule_title"] for r in rows) == sorted(facts["egov_alert_titles"])
    assert all(r["evidence"] for r in rows)


def test_agency_collectors_and_sources(board, facts):
    direct = board.value(
        f"SELECT count() AS n, max(observer_sequence) AS hi, "
        f"max(observer_sequence) - min(observer_sequence) + 1 - uniqExact(observer_sequence) AS missing "
        f"FROM events WHERE agency = 'egov' "
        f"AND time >= toDateTime({board.frm}) AND time <= toDateTime({board.to})"
    )[0]
    rows = board.rows(AGENCY, "Collectors")
    assert len(rows) == 1
    c = rows[0]
    assert c["collector"] == "col-egov-1"
    assert c["events"] == direct["n"] and c["heartbeats"] == 0
    assert c["last_sequence"] == direct["hi"]
    # One DNS event is numbered inside the day but timed after midnight.
    assert c["sequence_gaps"] == direct["missing"] == 1
    top = board.rows(AGENCY, "Top sources")[0]
    assert top["source"] == facts["attacker"]
    assert top["events"] == facts["attacker_events"]["egov"]
    assert top["successes"] == 1


def test_every_dashboard_query_is_tested():
    # Runs last in this module (pytest keeps file order).
    every = {(q["dashboard"], q["panel"]) for q in panel_sql.all_queries(0, 1, 300, {"agency": "x", "silence_minutes": "1"})}
    assert TESTED == every


def test_expander():
    sql = "SELECT 1 FROM t WHERE $__timeFilter(time) AND a = ${agency:sqlstring} AND b = $n AND c = $__interval_s"
    out = panel_sql.expand(sql, "2024-01-01 00:00:00", 1704153600, 60, {"agency": "it's", "n": "7"})
    assert out == (
        "SELECT 1 FROM t WHERE time >= toDateTime(1704067200) AND time <= toDateTime(1704153600)"
        " AND a = 'it\\'s' AND b = 7 AND c = 60"
    )
    assert panel_sql.expand("$__timeInterval(x)", 0, 1, 20) == "toStartOfInterval(toDateTime(x), INTERVAL 20 second)"
    assert panel_sql.expand("$__fromTime..$__toTime", 5, 9) == "toDateTime(5)..toDateTime(9)"
    for bad in ["$__timeFilter_ms(x)", "$missing", "${agency:csv}"]:
        with pytest.raises(panel_sql.ExpansionError):
            panel_sql.expand(bad, 0, 1, 1, {"agency": "a"})
