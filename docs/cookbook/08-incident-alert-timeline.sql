-- Title: Alert timeline of an incident
-- Use when: writing up an incident or briefing the agency: every distinct
--   alert in the range, in order, with the rule (and its author, as the
--   Sigma rule licence asks), the entities and the raw lines that fired.
-- Parameters:
--   {from:DateTime('UTC')}  start of the range (UTC, inclusive; alerts by window start)
--   {to:DateTime('UTC')}  end of the range (UTC, exclusive)
--   {agency:String}  one agency, or '' for all
--   {entity:String}  an IP, user or host name the alert must name, or '' for all
-- Returns: one row per alert (replayed duplicates collapsed by FINAL),
--   ordered by window start and end.
SELECT
    time,
    time_end,
    agency,
    rule_level,
    rule_title,
    rule_author,
    rule_kind,
    rule_tags,
    arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), group_keys, group_values), ' ') AS grouped_by,
    count,
    source_ips,
    user_names,
    host_names,
    evidence.original AS evidence,
    id
FROM alerts FINAL
WHERE time >= {from:DateTime('UTC')} AND time < {to:DateTime('UTC')}
  AND ({agency:String} = '' OR agency = {agency:String})
  AND ({entity:String} = ''
       OR has(source_ips, {entity:String})
       OR has(user_names, {entity:String})
       OR has(host_names, {entity:String}))
ORDER BY time, time_end, agency, id
