#!/usr/bin/env python3
"""Writes the provisioned Grafana dashboards (dashboards/grafana/dashboards/
*.json) from the definitions below, so the SQL and PromQL stay readable in
review. `--check` fails when the committed JSON differs from what this
would write (CI runs it through `make test-dashboards`).

Edit here, run `dashboards/tools/build_dashboards.py`, commit both.
Python 3 standard library only.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "dashboards" / "grafana" / "dashboards"

CH = {"type": "grafana-clickhouse-datasource", "uid": "qalqan-clickhouse"}
PROM = {"type": "prometheus", "uid": "qalqan-prometheus"}

# Bucket of a 5-minute rollup column, never finer than the rollup itself.
# (ClickHouse 18.16 has no toStartOfInterval, so no $__timeInterval.)
def bucket(col):
    return (
        f"toDateTime(intDiv(toUInt32({col}), greatest($__interval_s, 300)) "
        f"* greatest($__interval_s, 300))"
    )


SILENT_RULE_ID = "6c0f5a52-8e0b-4c1e-9d59-2f3a1b7c9e01"  # detector/src/health/heartbeat.rs


class Board:
    def __init__(self, uid, title, tags, description, time_from="now-24h", refresh="1m"):
        self.uid, self.title, self.tags, self.description = uid, title, tags, description
        self.time_from, self.refresh = time_from, refresh
        self.panels, self.variables = [], []
        self.x = self.y = 0
        self.row_h = 0

    def panel(self, kind, title, targets, w=12, h=8, description="", unit=None, options=None, field=None):
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        ds = targets[0].get("datasource")
        p = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": ds,
            "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "targets": targets,
            "fieldConfig": {"defaults": dict(field or {}), "overrides": []},
            "options": options or {},
        }
        if unit:
            p["fieldConfig"]["defaults"]["unit"] = unit
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)

    def json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["qalqan"] + self.tags,
            "timezone": "utc",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [
                {"type": "dashboards", "tags": ["qalqan"], "title": "qalqan", "asDropdown": True}
            ],
            "panels": self.panels,
        }


def sql(text, fmt="table", ref="A"):
    # The plugin's formats: 0 = time series, 1 = table.
    return {
        "refId": ref,
        "datasource": CH,
        "editorType": "sql",
        "queryType": fmt,
        "format": 0 if fmt == "timeseries" else 1,
        "rawSql": text.strip(),
    }


def ts_sql(text, ref="A"):
    return sql(text, "timeseries", ref)


def prom(expr, legend="", ref="A", instant=False):
    return {
        "refId": ref,
        "datasource": PROM,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
    }


# ------------------------------------------------------------------ SOC overview

def soc_overview():
    b = Board(
        "qalqan-soc-overview",
        "qalqan — SOC overview",
        ["soc"],
        "What is being attacked, from where, how hard — across every agency (ClickHouse).",
    )
    b.panel("timeseries", "Alerts by level", [ts_sql(f"""
SELECT {bucket('bucket')} AS t, rule_level AS level, uniqExactMerge(alerts) AS alerts
FROM alerts_5m
WHERE $__timeFilter(bucket)
GROUP BY t, level
ORDER BY t, level
""")], description="Distinct alerts per interval, by rule level (from the alerts_5m rollup).",
        field={"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}})
    b.panel("timeseries", "Alerts by agency", [ts_sql(f"""
SELECT {bucket('bucket')} AS t, agency, uniqExactMerge(alerts) AS alerts
FROM alerts_5m
WHERE $__timeFilter(bucket)
GROUP BY t, agency
ORDER BY t, agency
""")], description="Distinct alerts per interval, by agency.",
        field={"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}})
    b.panel("table", "Top rules", [sql("""
SELECT
    rule_title,
    rule_level,
    uniqExactMerge(alerts) AS alerts,
    arraySort(groupUniqArray(agency)) AS agencies
FROM alerts_5m
WHERE $__timeFilter(bucket)
GROUP BY rule_title, rule_level
ORDER BY alerts DESC, rule_title
LIMIT 20
""")], w=8, h=9, description="Rules by distinct alerts in the range.")
    b.panel("table", "Top attacking sources", [sql("""
SELECT
    source,
    count() AS alerts,
    sum(alert_events) AS events,
    arraySort(groupUniqArray(agency)) AS agencies,
    arraySort(groupUniqArray(rule_title)) AS rules,
    max(time_end) AS last_seen
FROM
(
    SELECT arrayJoin(source_ips) AS source, agency, rule_title, count AS alert_events, time_end
    FROM alerts FINAL
    WHERE $__timeFilter(time)
)
GROUP BY source
ORDER BY alerts DESC, events DESC, source
LIMIT 20
""")], w=8, h=9, description="Source addresses named by alerts (replayed alerts counted once).")
    b.panel("table", "Top targeted hosts", [sql("""
SELECT
    host,
    count() AS alerts,
    arraySort(groupUniqArray(agency)) AS agencies,
    arraySort(groupUniqArray(rule_title)) AS rules,
    max(time_end) AS last_seen
FROM
(
    SELECT arrayJoin(host_names) AS host, agency, rule_title, time_end
    FROM alerts FINAL
    WHERE $__timeFilter(time)
)
GROUP BY host
ORDER BY alerts DESC, host
LIMIT 20
""")], w=8, h=9, description="Hosts named by alerts.")
    b.panel("table", "Top targeted URLs (error responses)", [sql("""
SELECT
    url_original AS url,
    count() AS requests,
    uniqExact(source_address) AS sources,
    arraySlice(arraySort(groupUniqArray(source_address)), 1, 5) AS sample_sources,
    arraySort(groupUniqArray(agency)) AS agencies,
    arraySort(groupUniqArray(http_response_status_code)) AS statuses
FROM events
WHERE $__timeFilter(time)
  AND url_original != ''
  AND http_response_status_code >= 400
GROUP BY url
ORDER BY requests DESC, url
LIMIT 20
""")], w=12, h=9, description="Requested URLs that the web servers refused or did not have: what scanners probe.")
    b.panel("table", "Agencies that went silent", [sql(f"""
SELECT
    agency,
    last_event,
    intDiv(toUInt32($__toTime) - toUInt32(last_event), 60) AS silent_minutes,
    silence_alerts
FROM
(
    SELECT agency, max(time) AS last_event
    FROM events
    WHERE time >= subtractDays($__fromTime, 7) AND time <= $__toTime
    GROUP BY agency
    HAVING last_event < subtractMinutes($__toTime, ${{silence_minutes}})
) AS quiet
ANY LEFT JOIN
(
    SELECT agency, count() AS silence_alerts
    FROM alerts FINAL
    WHERE $__timeFilter(time) AND rule_id = '{SILENT_RULE_ID}'
    GROUP BY agency
) AS alerted USING agency
ORDER BY last_event, agency
""")], w=12, h=9, description="Agencies with events in the week before the range but none in the last "
        "$silence_minutes minutes of it (heartbeats count), with the detector's silence alerts.")
    b.panel("table", "Latest critical alerts", [sql("""
SELECT
    time,
    time_end,
    agency,
    rule_title,
    rule_author,
    arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), group_keys, group_values), ' ') AS grouped_by,
    count,
    arrayStringConcat(source_ips, ', ') AS sources,
    arrayStringConcat(host_names, ', ') AS hosts,
    arrayStringConcat(user_names, ', ') AS users,
    arrayStringConcat(evidence.original, '\\n') AS evidence,
    id
FROM alerts FINAL
WHERE $__timeFilter(time) AND rule_level = 'critical'
ORDER BY time DESC, id
LIMIT 50
""")], w=24, h=10, description="Critical alerts, newest first, with the raw lines that fired.")
    b.variables.append({
        "type": "custom",
        "name": "silence_minutes",
        "label": "Silent after (minutes)",
        "query": "15,30,60,240",
        "current": {"text": "30", "value": "30"},
        "options": [],
    })
    return b


# ------------------------------------------------------------- agency drill-down

def agency_drilldown():
    b = Board(
        "qalqan-agency",
        "qalqan — agency drill-down",
        ["soc", "agency"],
        "One agency's events, alerts, parse quality and collectors (ClickHouse).",
    )
    b.variables.append({
        "type": "query",
        "name": "agency",
        "label": "Agency",
        "datasource": CH,
        "query": "SELECT DISTINCT agency FROM events_5m ORDER BY agency",
        "definition": "SELECT DISTINCT agency FROM events_5m ORDER BY agency",
        "refresh": 1,
        "sort": 1,
        "multi": False,
        "includeAll": False,
    })
    a = "agency = ${agency:sqlstring}"
    b.panel("timeseries", "Events by dataset", [ts_sql(f"""
SELECT {bucket('bucket')} AS t, if(event_dataset = '', '(none)', event_dataset) AS dataset, sum(events) AS events
FROM events_5m
WHERE {a} AND $__timeFilter(bucket)
GROUP BY t, dataset
ORDER BY t, dataset
""")], description="Events per interval by dataset (events_5m rollup).")
    b.panel("timeseries", "Alerts by level", [ts_sql(f"""
SELECT {bucket('bucket')} AS t, rule_level AS level, uniqExactMerge(alerts) AS alerts
FROM alerts_5m
WHERE {a} AND $__timeFilter(bucket)
GROUP BY t, level
ORDER BY t, level
""")], description="Distinct alerts per interval by level.",
        field={"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}})
    b.panel("stat", "Parse quality", [sql(f"""
SELECT
    sum(events) AS total_events,
    sum(unparsed) AS unparsed_lines,
    round(100 * (1 - unparsed_lines / greatest(total_events, 1)), 2) AS parsed_percent
FROM events_5m
WHERE {a} AND $__timeFilter(bucket)
""")], w=8, h=6, description="Lines no parser understood are kept as message-only events; "
        "a rising share means a new log format or a broken relay.")
    b.panel("table", "Parse quality by source", [sql(f"""
SELECT
    if(logsource_product = '', '(none)', logsource_product) AS product,
    if(logsource_service = '', '(none)', logsource_service) AS service,
    if(event_dataset = '', '(none)', event_dataset) AS dataset,
    sum(events) AS events,
    sum(unparsed) AS unparsed,
    sum(bytes) AS bytes
FROM events_5m
WHERE {a} AND $__timeFilter(bucket)
GROUP BY product, service, dataset
ORDER BY unparsed DESC, events DESC, product, service, dataset
""")], w=16, h=6)
    b.panel("table", "Collectors", [sql(f"""
SELECT
    observer_name AS collector,
    arraySort(groupUniqArray(host_name)) AS hosts,
    countIf(event_dataset != 'qalqan.heartbeat') AS events,
    countIf(event_dataset = 'qalqan.heartbeat') AS heartbeats,
    max(time) AS last_event,
    maxIf(observer_sequence, observer_sequence > 0) AS last_sequence,
    maxIf(observer_sequence, observer_sequence > 0) - minIf(observer_sequence, observer_sequence > 0) + 1
        - uniqExactIf(observer_sequence, observer_sequence > 0) AS sequence_gaps
FROM events
WHERE {a} AND $__timeFilter(time) AND observer_name != ''
GROUP BY collector
ORDER BY collector
""")], w=24, h=7, description="Per collector: events stored, heartbeats, the last event, and "
        "sequence numbers missing inside the range (lost logs; at-least-once duplicates do not count; "
        "at the range's edges an event numbered inside it but timed outside shows as a gap).")
    b.panel("table", "Alerts", [sql(f"""
SELECT
    time,
    rule_level,
    rule_title,
    arrayStringConcat(source_ips, ', ') AS sources,
    arrayStringConcat(user_names, ', ') AS users,
    arrayStringConcat(host_names, ', ') AS hosts,
    count,
    arrayStringConcat(evidence.original, '\\n') AS evidence,
    id
FROM alerts FINAL
WHERE {a} AND $__timeFilter(time)
ORDER BY time DESC, id
LIMIT 200
""")], w=24, h=10)
    b.panel("table", "Top sources", [sql(f"""
SELECT
    source_address AS source,
    count() AS events,
    countIf(event_outcome = 'failure') AS failures,
    countIf(event_outcome = 'success') AS successes,
    uniqExact(host_name) AS hosts,
    arraySlice(arraySort(groupUniqArray(event_dataset)), 1, 5) AS datasets
FROM events
WHERE {a} AND $__timeFilter(time) AND source_address != ''
GROUP BY source
ORDER BY failures DESC, events DESC, source
LIMIT 20
""")], w=12, h=9)
    b.panel("table", "Unparsed lines", [sql(f"""
SELECT time, observer_name AS collector, host_name, original
FROM events
WHERE {a} AND $__timeFilter(time) AND has(tags, 'qalqan.unparsed')
ORDER BY time DESC
LIMIT 50
""")], w=12, h=9, description="The newest lines no parser claimed, raw.")
    return b


# --------------------------------------------------------------- pipeline health

def pipeline_health():
    b = Board(
        "qalqan-pipeline-health",
        "qalqan — pipeline health",
        ["pipeline"],
        "Collectors, Kafka, detector and ClickHouse (Prometheus). Per-collector numbers come from "
        "heartbeats through Kafka (qalqan_detector_collector_reported), so they work for collectors "
        "the centre cannot scrape; qalqan_collector_* series appear for collectors it does scrape.",
        time_from="now-6h", refresh="30s",
    )
    r = "$__rate_interval"
    b.panel("timeseries", "Events/s per agency", [
        prom(f"sum by (agency) (rate(qalqan_detector_events_total[{r}]))", "{{agency}}"),
    ], unit="ops")
    b.panel("timeseries", "Events/s per collector", [
        prom(f'sum by (agency, collector) (rate(qalqan_detector_collector_reported{{stat="events_sent"}}[{r}]))',
             "{{agency}}/{{collector}}"),
        prom(f"sum by (instance) (rate(qalqan_collector_events_sent_total[{r}]))", "scraped {{instance}}", "B"),
    ], unit="ops", description="Events each collector had confirmed by Kafka (heartbeats), and scraped collectors.")
    b.panel("timeseries", "Parse failures", [
        prom(f'sum by (instance) (rate(qalqan_collector_events_parsed_total{{parser="unparsed"}}[{r}])) '
             f"/ sum by (instance) (rate(qalqan_collector_events_parsed_total[{r}]))", "unparsed share {{instance}}"),
        prom(f"sum by (instance, flag) (rate(qalqan_collector_events_flagged_total[{r}]))", "{{flag}} {{instance}}", "B"),
    ], unit="percentunit", description="Share of lines no parser recognized, and damaged lines by flag.")
    b.panel("timeseries", "Kafka consumer lag", [
        prom("sum by (group, topic) (qalqan_detector_consumer_lag_messages)", "{{group}} {{topic}}"),
    ], unit="short", description="Messages between each detector group's committed position and the end of the topic.")
    b.panel("timeseries", "Collector disk buffer", [
        prom('max by (agency, collector) (qalqan_detector_collector_reported{stat="buffer_bytes"})',
             "{{agency}}/{{collector}}"),
        prom("max by (instance) (qalqan_collector_buffer_bytes)", "scraped {{instance}}", "B"),
    ], unit="bytes", description="Bytes waiting in collectors' disk buffers (Kafka down or slow).")
    b.panel("timeseries", "Oldest unsent event", [
        prom('max by (agency, collector) (qalqan_detector_collector_reported{stat="oldest_unsent_seconds"})',
             "{{agency}}/{{collector}}"),
        prom("max by (instance) (qalqan_collector_oldest_unsent_event_age_seconds)", "scraped {{instance}}", "B"),
    ], unit="s")
    b.panel("timeseries", "UDP datagrams dropped/s", [
        prom(f'sum by (agency, collector) (rate(qalqan_detector_collector_reported{{stat="udp_dropped"}}[{r}]))',
             "{{agency}}/{{collector}}"),
    ], unit="pps", description="Syslog datagrams lost by collectors (kernel socket overflow or full buffer).")
    b.panel("timeseries", "Collector heartbeat age", [
        prom("time() - max by (agency, collector) (qalqan_detector_collector_last_heartbeat_timestamp_seconds)",
             "{{agency}}/{{collector}}"),
        prom("max by (agency) (qalqan_detector_agency_silent)", "silent {{agency}}", "B"),
    ], unit="s")
    b.panel("timeseries", "Lost logs (sequence gaps)", [
        prom(f"sum by (agency, collector) (increase(qalqan_detector_collector_sequence_gaps_total[{r}]))",
             "{{agency}}/{{collector}}"),
    ], unit="short", description="observer.sequence numbers a collector handed out that never reached the detector.")
    b.panel("timeseries", "Late events/s", [
        prom(f"sum by (rule) (rate(qalqan_detector_late_events_total[{r}]))", "{{rule}}"),
    ], unit="ops", description="Signals older than the watermark minus the allowed lateness: counted, not correlated.")
    b.panel("timeseries", "Detection latency", [
        prom(f"histogram_quantile(0.5, sum by (le) (rate(qalqan_detector_detection_latency_seconds_bucket[{r}])))", "p50"),
        prom(f"histogram_quantile(0.95, sum by (le) (rate(qalqan_detector_detection_latency_seconds_bucket[{r}])))", "p95", "B"),
        prom(f"histogram_quantile(0.99, sum by (le) (rate(qalqan_detector_detection_latency_seconds_bucket[{r}])))", "p99", "C"),
        prom(f"sum(rate(qalqan_detector_detection_latency_seconds_sum[{r}])) "
             f"/ sum(rate(qalqan_detector_detection_latency_seconds_count[{r}]))", "mean", "D"),
    ], unit="s", description="From the collector receiving a line to the alert produced.")
    b.panel("timeseries", "ClickHouse inserts", [
        prom(f"sum by (table) (rate(qalqan_detector_clickhouse_insert_errors_total[{r}]))", "errors {{table}}"),
        prom(f"sum by (table) (rate(qalqan_detector_clickhouse_rows_total[{r}]))", "rows {{table}}", "B"),
    ], unit="ops", description="Failed (retried) inserts and rows confirmed, by table.")
    b.panel("timeseries", "Alerts/s by level", [
        prom(f"sum by (level) (rate(qalqan_detector_alerts_total[{r}]))", "{{level}}"),
    ], unit="ops")
    b.panel("timeseries", "Dead letters/s", [
        prom(f"sum by (reason) (rate(qalqan_detector_deadletters_total[{r}]))", "{{reason}}"),
    ], unit="ops", description="Messages the detector could not decode, sent to the dead-letter topic.")
    b.panel("stat", "Detector instances up", [
        prom('sum(up{job=~"qalqan-detector.*"})', "up", instant=True),
    ], w=8, h=5)
    b.panel("stat", "Rules loaded", [
        prom('sum by (state) (qalqan_detector_rules)', "{{state}}", instant=True),
    ], w=8, h=5)
    b.panel("stat", "Correlation state keys", [
        prom("sum(qalqan_detector_state_keys)", "keys", instant=True),
    ], w=8, h=5)
    return b


BOARDS = {
    "soc-overview.json": soc_overview,
    "agency-drilldown.json": agency_drilldown,
    "pipeline-health.json": pipeline_health,
}


def render(fn):
    return json.dumps(fn().json(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in BOARDS.items():
        path = OUT / name
        text = render(fn)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("build_dashboards: out of date: " + ", ".join(stale)
              + " (run dashboards/tools/build_dashboards.py and commit)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
