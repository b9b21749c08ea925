-- marts.conversations_without_deals: external conversations (staging.conversations, not
-- internal) linked to no deal, with how serious the gap is and its likely cause:
--   account known, no deal open there when the call happened:
--     call of 15 minutes or more  -> high,   'new opportunity not logged'
--     shorter call                -> medium, 'early stage: no opportunity yet'
--   account known, several deals open there (the call could be any of them)
--                                  -> medium, 'deal association missing: several open deals at the account'
--   no account: no participant's email or domain is in the CRM
--                                  -> low,    'unknown domain: participants match no account'
-- With the account's open deals and contacts (counted at build time) and the external domains.
WITH gaps AS (
    SELECT *
    FROM staging.conversations
    WHERE NOT coalesce(is_internal, false) AND deal_id IS NULL
),
open_at_call AS (
    SELECT g.workspace_id, g.id, count(d.id) AS open_deals
    FROM gaps g
    JOIN staging.deals d
        ON d.workspace_id = g.workspace_id
        AND d.account_id = g.account_id
        AND d.created_at <= g.started_at
        AND (d.closed_at IS NULL OR d.closed_at >= g.started_at)
    GROUP BY g.workspace_id, g.id
),
open_now AS (
    SELECT workspace_id, account_id, count(*) AS open_deals
    FROM staging.deals
    WHERE NOT coalesce(is_closed, false)
    GROUP BY workspace_id, account_id
),
contacts AS (
    SELECT workspace_id, account_id, count(*) AS contacts
    FROM staging.contacts
    GROUP BY workspace_id, account_id
),
classified AS (
    SELECT
        g.*,
        coalesce(o.open_deals, 0) AS open_deals_at_call,
        CASE
            WHEN g.account_id IS NULL THEN 'low'
            WHEN coalesce(o.open_deals, 0) > 1 THEN 'medium'
            WHEN coalesce(g.duration_seconds, 0) >= 900 THEN 'high'
            ELSE 'medium'
        END AS severity,
        CASE
            WHEN g.account_id IS NULL THEN 'unknown domain: participants match no account'
            WHEN coalesce(o.open_deals, 0) > 1 THEN 'deal association missing: several open deals at the account'
            WHEN coalesce(g.duration_seconds, 0) >= 900 THEN 'new opportunity not logged'
            ELSE 'early stage: no opportunity yet'
        END AS likely_cause
    FROM gaps g
    LEFT JOIN open_at_call o ON o.workspace_id = g.workspace_id AND o.id = g.id
)
SELECT
    c.workspace_id,
    c.id AS conversation_id,
    c.source,
    c.source_id,
    c.title,
    c.started_at,
    c.duration_seconds,
    c.account_id,
    a.name AS account_name,
    c.contact_id,
    c.link_method,
    c.open_deals_at_call,
    coalesce(n.open_deals, 0) AS open_deals_at_account,
    coalesce(k.contacts, 0) AS total_contacts_at_account,
    c.severity,
    c.likely_cause
FROM classified c
LEFT JOIN staging.accounts a ON a.workspace_id = c.workspace_id AND a.id = c.account_id
LEFT JOIN open_now n ON n.workspace_id = c.workspace_id AND n.account_id = c.account_id
LEFT JOIN contacts k ON k.workspace_id = c.workspace_id AND k.account_id = c.account_id
