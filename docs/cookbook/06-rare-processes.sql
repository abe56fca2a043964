-- Title: Rare processes and commands on servers
-- Use when: hunting for what an intruder ran (sudo commands, cron jobs,
--   process starts): commands seen in the window that were rare before it.
-- Parameters:
--   {from:DateTime('UTC')}  start of the window (UTC, inclusive)
--   {to:DateTime('UTC')}  end of the window (UTC, exclusive)
--   {lookback_days:UInt32}  baseline before `from` (e.g. 30)
--   {max_runs:UInt32}  commands run more often than this (baseline + window) are not rare (e.g. 3)
-- Returns: one row per agency, process and command line run in the window,
--   rarest first, with the hosts and users that ran it.
SELECT
    agency,
    process_name,
    process_command_line,
    countIf(time >= {from:DateTime('UTC')}) AS runs_in_window,
    countIf(time < {from:DateTime('UTC')}) AS runs_before,
    arraySlice(arraySort(groupUniqArray(host_name)), 1, 10) AS hosts,
    arraySlice(arraySort(groupUniqArray(user_name)), 1, 10) AS users,
    minIf(time, time >= {from:DateTime('UTC')}) AS first_in_window
FROM events
WHERE time >= subtractDays({from:DateTime('UTC')}, {lookback_days:UInt32}) AND time < {to:DateTime('UTC')}
  AND (process_name != '' OR process_command_line != '')
GROUP BY agency, process_name, process_command_line
HAVING runs_in_window > 0 AND runs_in_window + runs_before <= {max_runs:UInt32}
ORDER BY runs_in_window + runs_before, first_in_window, agency
