-- Title: Everything an IP address did, in every agency
-- Use when: an address shows up in an alert, a report from a partner CERT or
--   a firewall log, and you need its full story across all agencies.
-- Parameters:
--   {ip:String}  IPv4 or IPv6 address, e.g. 203.0.113.7
--   {from:DateTime('UTC')}  start of the range (UTC, inclusive), e.g. 2026-03-02 00:00:00
--   {to:DateTime('UTC')}  end of the range (UTC, exclusive)
-- Returns: one row per event where the address is the source or the
--   destination, oldest first, with the raw line. At most 10000 rows; narrow
--   the range or add `AND agency = '...'` for more.
WITH
    {ip:String} AS ip_text,
    if(position(ip_text, ':') > 0, IPv6StringToNum(ip_text), IPv4ToIPv6(IPv4StringToNum(ip_text))) AS ip
SELECT
    time,
    agency,
    host_name,
    if(source_ip = ip, 'source', 'destination') AS role,
    source_address,
    source_port,
    destination_address,
    destination_port,
    user_name,
    event_dataset,
    event_action,
    event_outcome,
    http_request_method,
    url_original,
    http_response_status_code,
    original
FROM events
WHERE time >= {from:DateTime('UTC')} AND time < {to:DateTime('UTC')}
  AND (source_ip = ip OR destination_ip = ip)
ORDER BY time, agency, event_id
LIMIT 10000
