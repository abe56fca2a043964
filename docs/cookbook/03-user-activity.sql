-- Title: Everything a user account did, in every agency
-- Use when: an account is suspected compromised or misused; the same user
--   name in several agencies is shown side by side.
-- Parameters:
--   {user:String}  user name exactly as logged, e.g. deploy
--   {from:DateTime('UTC')}  start of the range (UTC, inclusive)
--   {to:DateTime('UTC')}  end of the range (UTC, exclusive)
-- Returns: one row per event of the user, oldest first: where from, on
--   which host, what happened (logins, sudo commands, ...), and the raw line.
SELECT
    time,
    agency,
    host_name,
    source_address,
    event_dataset,
    event_action,
    event_outcome,
    process_name,
    process_command_line,
    url_original,
    original
FROM events
WHERE time >= {from:DateTime('UTC')} AND time < {to:DateTime('UTC')}
  AND user_name = {user:String}
ORDER BY time, agency, event_id
LIMIT 10000
