-- Title: Beaconing: connections at regular intervals
-- Use when: hunting command-and-control. Malware implants call home on a
--   timer; people and ordinary services do not. This finds flows (source,
--   destination, port) whose gaps between connections hardly vary.
-- Parameters:
--   {from:DateTime('UTC')}  start of the range (UTC, inclusive)
--   {to:DateTime('UTC')}  end of the range (UTC, exclusive)
--   {min_connections:UInt32}  flows with fewer connections are left out (e.g. 10)
--   {min_interval_s:UInt32}  ignore flows faster than this mean gap, in seconds (e.g. 10)
--   {max_jitter:Float64}  largest standard deviation / mean of the gaps (e.g. 0.1)
-- Returns: one row per agency and flow, most regular first: connections,
--   mean gap and its spread in seconds, jitter (0 = perfectly regular).
SELECT
    agency,
    source_address,
    destination_address,
    destination_port,
    connections,
    round(mean_gap, 1) AS mean_gap_s,
    round(stddev_gap, 2) AS stddev_gap_s,
    round(stddev_gap / mean_gap, 3) AS jitter,
    first_seen,
    last_seen
FROM
(
    SELECT
        agency,
        source_address,
        destination_address,
        destination_port,
        count() AS connections,
        arraySort(groupArray(toUInt32(time))) AS times,
        arrayMap((a, b) -> toInt64(b) - toInt64(a), arrayPopBack(times), arrayPopFront(times)) AS gaps,
        arrayReduce('avg', gaps) AS mean_gap,
        arrayReduce('stddevPop', gaps) AS stddev_gap,
        min(time) AS first_seen,
        max(time) AS last_seen
    FROM events
    WHERE time >= {from:DateTime('UTC')} AND time < {to:DateTime('UTC')}
      AND destination_ip != IPv6StringToNum('::')
    GROUP BY agency, source_address, destination_address, destination_port
    HAVING connections >= {min_connections:UInt32}
)
WHERE mean_gap >= {min_interval_s:UInt32} AND stddev_gap / mean_gap <= {max_jitter:Float64}
ORDER BY jitter, connections DESC
