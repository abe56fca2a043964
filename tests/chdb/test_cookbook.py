"""Every responder cookbook query on a modern engine, with native query
parameters, against the incident scenario in both schemas. The same
assertions run on the live 18.16 server in detector/tests/clickhouse_cookbook.rs."""

import pytest

from conftest import DATABASES, cookbook_queries, cookbook_sql, placeholders

TESTED = set()


@pytest.fixture(params=list(DATABASES.values()))
def run(request, engine, facts):
    database = request.param

    def run_query(name, **params):
        sql = cookbook_sql(name)
        values = {"from": facts["incident_from"], "to": facts["incident_to"], **params}
        declared = placeholders(sql)
        assert declared <= set(values), f"{name}: no value for {declared - set(values)}"
        TESTED.add(name)
        engine.execute(f"USE {database}")
        try:
            return engine.rows(sql, params={k: str(values[k]) for k in declared})
        finally:
            engine.execute("USE default")

    return run_query


def test_01_ip_activity(run, facts):
    rows = run("01-ip-activity.sql", ip=facts["attacker"])
    assert len(rows) == sum(facts["attacker_events"].values())
    assert {r["agency"] for r in rows} == set(facts["attacker_events"])
    assert all(r["role"] == "source" and r["source_address"] == facts["attacker"] for r in rows)
    assert rows[0]["url_original"] == "/wp-login.php"
    assert "Nikto" in rows[0]["original"]
    c2 = run("01-ip-activity.sql", ip=facts["c2"])
    assert len(c2) == facts["beacon_connections"]
    assert all(r["role"] == "destination" and r["source_address"] == facts["portal_ip"] for r in c2)


def test_02_ip_summary(run, facts):
    rows = {r["agency"]: r for r in run("02-ip-summary.sql", ip=facts["attacker"])}
    assert set(rows) == {"egov", "mof"}
    egov = rows["egov"]
    assert egov["events"] == facts["attacker_events"]["egov"]
    assert egov["successes"] == 1
    assert egov["users"] == facts["brute_force_users"]
    assert egov["alert_titles"] == [
        "SSH brute force",
        "Successful login after brute force",
        "Web vulnerability scanner",
    ]
    assert rows["mof"]["events"] == facts["attacker_events"]["mof"]
    assert rows["mof"]["alert_titles"] == []


def test_03_user_activity(run, facts):
    rows = run("03-user-activity.sql", user="deploy")
    assert len(rows) == 1 + len(facts["rare_commands"])
    assert rows[0]["event_outcome"] == "success"
    assert rows[0]["source_address"] == facts["attacker"]
    assert sorted(r["process_command_line"] for r in rows[1:]) == facts["rare_commands"]


def test_04_brute_force_and_spraying(run, facts):
    rows = run("04-brute-force-and-spraying.sql", min_failures=10, spray_min_users=10)
    assert len(rows) == 2, rows
    bf, spray = rows
    assert bf["source_address"] == facts["attacker"]
    assert bf["pattern"] == "brute force"
    assert bf["failures"] == facts["brute_force_failures"]
    assert bf["compromised"] == 1
    assert bf["succeeded_as"] == ["deploy"]
    assert spray["source_address"] == facts["sprayer"]
    assert spray["pattern"] == "spraying"
    assert spray["users"] == facts["spray_users"]
    assert spray["compromised"] == 0


def test_05_first_seen_sources(run, facts):
    rows = run("05-first-seen-sources.sql", lookback_days=7)
    seen = {}
    for r in rows:
        seen.setdefault(r["agency"], []).append(r["source_address"])
    assert {k: sorted(v) for k, v in seen.items()} == facts["first_seen"]


def test_06_rare_processes(run, facts):
    rows = run("06-rare-processes.sql", lookback_days=7, max_runs=2)
    assert sorted(r["process_command_line"] for r in rows) == facts["rare_commands"]
    assert all(r["agency"] == "egov" and r["hosts"] == ["portal1"] for r in rows)


def test_07_beaconing(run, facts):
    rows = run(
        "07-beaconing.sql", min_connections=10, min_interval_s=10, max_jitter=0.1
    )
    assert len(rows) == 1, rows
    beacon = rows[0]
    assert beacon["destination_address"] == facts["c2"]
    assert beacon["destination_port"] == 443
    assert beacon["connections"] == facts["beacon_connections"]
    assert abs(beacon["mean_gap_s"] - facts["beacon_interval_s"]) < 1
    assert beacon["jitter"] < 0.05


def test_08_incident_alert_timeline(run, facts):
    rows = run("08-incident-alert-timeline.sql", agency="egov", entity="")
    assert [r["rule_title"] for r in rows] == facts["egov_alert_titles"]
    assert all(r["rule_author"] == "qalqan project" for r in rows)
    assert all(r["evidence"] for r in rows)
    assert rows[1]["grouped_by"] == f"source.ip={facts['attacker']}"
    rows = run("08-incident-alert-timeline.sql", agency="", entity=facts["sprayer"])
    assert [r["agency"] for r in rows] == ["mof"]


def test_every_cookbook_query_is_tested():
    # Runs last in this module (pytest keeps file order).
    assert TESTED == set(cookbook_queries())
