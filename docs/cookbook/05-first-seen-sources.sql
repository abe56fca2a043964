-- Title: Sources seen for the first time, per agency
-- Use when: something changed and you want the addresses an agency had never
--   heard from before (new scanners, new VPN exits, a new C2 talking back).
-- Parameters:
--   {from:DateTime('UTC')}  start of the window of interest (UTC, inclusive)
--   {to:DateTime('UTC')}  end of the window (UTC, exclusive)
--   {lookback_days:UInt32}  how far back "never seen" reaches before `from` (e.g. 30)
-- Returns: one row per agency and source address whose first event in the
--   lookback is inside the window, with how much it did since.
SELECT
    agency,
    source_address,
    min(time) AS first_seen,
    max(time) AS last_seen,
    count() AS events,
    uniqExact(host_name) AS hosts,
    arraySlice(arraySort(groupUniqArray(event_dataset)), 1, 10) AS datasets
FROM events
WHERE time >= subtractDays({from:DateTime('UTC')}, {lookback_days:UInt32}) AND time < {to:DateTime('UTC')}
  AND source_ip != IPv6StringToNum('::')
GROUP BY agency, source_address
HAVING first_seen >= {from:DateTime('UTC')}
ORDER BY agency, first_seen, source_address
