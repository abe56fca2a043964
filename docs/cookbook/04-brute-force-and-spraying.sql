-- Title: Brute force and password spraying, by source
-- Use when: hunting credential attacks, or checking what an authentication
--   alert belongs to. Brute force = many tries against few accounts;
--   spraying = few tries each against many accounts.
-- Parameters:
--   {from:DateTime('UTC')}  start of the range (UTC, inclusive)
--   {to:DateTime('UTC')}  end of the range (UTC, exclusive)
--   {min_failures:UInt32}  sources with fewer failed logins are left out (e.g. 10)
--   {spray_min_users:UInt32}  distinct accounts from which a source counts as spraying (e.g. 10)
-- Returns: one row per agency and source address with failed and successful
--   logins, accounts tried, hosts, the pattern, and whether any login from
--   the source succeeded (`compromised` = 1 means look now).
SELECT
    agency,
    source_address,
    countIf(event_outcome = 'failure') AS failures,
    countIf(event_outcome = 'success') AS successes,
    uniqExact(user_name) AS users,
    uniqExact(host_name) AS hosts,
    if(users >= {spray_min_users:UInt32} AND failures <= 3 * users, 'spraying', 'brute force') AS pattern,
    successes > 0 AS compromised,
    arraySlice(arraySort(groupUniqArrayIf(user_name, event_outcome = 'success')), 1, 20) AS succeeded_as,
    arraySlice(arraySort(groupUniqArray(user_name)), 1, 10) AS sample_users,
    min(time) AS first_seen,
    max(time) AS last_seen
FROM events
WHERE time >= {from:DateTime('UTC')} AND time < {to:DateTime('UTC')}
  AND has(event_category, 'authentication')
  AND source_ip != IPv6StringToNum('::')
GROUP BY agency, source_address
HAVING failures >= {min_failures:UInt32}
ORDER BY failures DESC, agency, source_address
