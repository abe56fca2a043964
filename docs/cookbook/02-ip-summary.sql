-- Title: An IP address per agency at a glance
-- Use when: you need to know quickly which agencies an address touched,
--   when, how hard, whether anything succeeded, and which alerts it raised.
-- Parameters:
--   {ip:String}  IPv4 or IPv6 address, e.g. 203.0.113.7
--   {from:DateTime('UTC')}  start of the range (UTC, inclusive)
--   {to:DateTime('UTC')}  end of the range (UTC, exclusive)
-- Returns: one row per agency: first and last event, event counts by
--   outcome, hosts and user names involved, datasets, and the titles of the
--   distinct alerts that name the address.
SELECT
    agency,
    first_seen,
    last_seen,
    events,
    failures,
    successes,
    hosts,
    users,
    datasets,
    alert_titles
FROM
(
    WITH
        {ip:String} AS ip_text,
        if(position(ip_text, ':') > 0, IPv6StringToNum(ip_text), IPv4ToIPv6(IPv4StringToNum(ip_text))) AS ip
    SELECT
        agency,
        min(time) AS first_seen,
        max(time) AS last_seen,
        count() AS events,
        countIf(event_outcome = 'failure') AS failures,
        countIf(event_outcome = 'success') AS successes,
        arraySlice(arraySort(groupUniqArray(host_name)), 1, 20) AS hosts,
        arraySlice(arraySort(arrayFilter(u -> u != '', groupUniqArray(user_name))), 1, 50) AS users,
        arraySlice(arraySort(groupUniqArray(event_dataset)), 1, 20) AS datasets
    FROM events
    WHERE time >= {from:DateTime('UTC')} AND time < {to:DateTime('UTC')}
      AND (source_ip = ip OR destination_ip = ip)
    GROUP BY agency
) AS activity
ANY LEFT JOIN
(
    SELECT agency, arraySort(groupUniqArray(rule_title)) AS alert_titles
    FROM alerts FINAL
    WHERE time >= {from:DateTime('UTC')} AND time < {to:DateTime('UTC')}
      AND has(source_ips, {ip:String})
    GROUP BY agency
) AS alerted USING agency
ORDER BY first_seen
