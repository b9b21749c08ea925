-- staging.tickets: support tickets from Zendesk (raw.zendesk_tickets) and Intercom
-- conversations (raw.intercom_conversations).
--   contact_id: the requester's (Intercom: the author's) email matched to staging.contacts
--               (contacts are merged by lower-cased email, so an email names one contact);
--   account_id: the ticket's Zendesk organization's account (staging.customer_accounts), else
--               the contact's account, else the email's domain when exactly one account has it;
--   status:     Zendesk's (new, open, pending, hold, solved, closed); Intercom's state (open,
--               snoozed, closed);
--   solved_at:  Intercom's statistics.last_close_at of a closed conversation; for Zendesk
--               (whose ticket records carry no solve time: that is in ticket metrics, not
--               synced) the last update of a solved or closed ticket.
-- Deleted tickets (tombstones) are left out.
WITH zendesk_users AS (
    SELECT workspace_id, CAST(id AS VARCHAR) AS user_id, lower(trim(CAST(email AS VARCHAR))) AS email
    FROM raw.zendesk_users
),
unioned AS (
    SELECT
        t.workspace_id,
        'zendesk' AS source,
        CAST(t.id AS VARCHAR) AS source_id,
        t.source_data,
        CAST(t.created_at AS TIMESTAMP) AS created_at,
        CAST(t.updated_at AS TIMESTAMP) AS updated_at,
        u.email,
        CASE WHEN nullif(CAST(t.organization_id AS VARCHAR), '') IS NOT NULL
            THEN uuid5(t.workspace_id, 'zendesk', CAST(t.organization_id AS VARCHAR)) END AS customer_record,
        CAST(t.subject AS VARCHAR) AS subject,
        lower(CAST(t.status AS VARCHAR)) AS status,
        lower(CAST(t.priority AS VARCHAR)) AS priority,
        CASE WHEN lower(CAST(t.status AS VARCHAR)) IN ('solved', 'closed')
            THEN CAST(t.updated_at AS TIMESTAMP) END AS solved_at
    FROM raw.zendesk_tickets t
    LEFT JOIN zendesk_users u
        ON u.workspace_id = t.workspace_id AND u.user_id = CAST(t.requester_id AS VARCHAR)
    WHERE NOT coalesce(CAST(t._deleted AS BOOLEAN), false)
    UNION ALL
    SELECT
        c.workspace_id,
        'intercom',
        CAST(c.id AS VARCHAR),
        c.source_data,
        CAST(c.created_at AS TIMESTAMP),
        CAST(c.updated_at AS TIMESTAMP),
        lower(trim(CAST(c.author_email AS VARCHAR))),
        CAST(NULL AS VARCHAR),
        CAST(c.title AS VARCHAR),
        lower(CAST(c.state AS VARCHAR)),
        lower(json_get(c.source_data, '/priority')),
        CASE WHEN lower(CAST(c.state AS VARCHAR)) = 'closed' THEN coalesce(
            to_timestamp_seconds(CAST(json_get(c.source_data, '/statistics/last_close_at') AS BIGINT)),
            CAST(c.updated_at AS TIMESTAMP)
        ) END
    FROM raw.intercom_conversations c
),
email_contacts AS (
    SELECT workspace_id, lower(email) AS email, min(id) AS contact_id, min(account_id) AS account_id
    FROM staging.contacts
    WHERE email IS NOT NULL
    GROUP BY workspace_id, lower(email)
    HAVING count(*) = 1
),
domain_accounts AS (
    SELECT workspace_id, domain, min(id) AS account_id
    FROM staging.accounts
    WHERE domain IS NOT NULL
    GROUP BY workspace_id, domain
    HAVING count(*) = 1
)
SELECT
    u.workspace_id,
    uuid5(u.workspace_id, u.source, u.source_id) AS id,
    u.source,
    u.source_id,
    map([arrow_cast(u.source, 'Utf8')], [arrow_cast(u.source_id, 'Utf8')]) AS external_ids,
    u.source_data,
    u.created_at,
    coalesce(u.updated_at, u.created_at) AS updated_at,
    coalesce(ca.account_id, ec.account_id, da.account_id) AS account_id,
    ec.contact_id,
    u.subject,
    u.status,
    u.priority,
    u.created_at AS opened_at,
    u.solved_at
FROM unioned u
LEFT JOIN staging.customer_accounts ca
    ON ca.workspace_id = u.workspace_id AND ca.id = u.customer_record
LEFT JOIN email_contacts ec
    ON ec.workspace_id = u.workspace_id AND ec.email = u.email
LEFT JOIN domain_accounts da
    ON da.workspace_id = u.workspace_id AND da.domain = normalize_domain(u.email)
