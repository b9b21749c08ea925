-- staging.activities: emails, calls and meetings, from Salesforce Task (raw.salesforce_task:
-- calls and emails) and Event (raw.salesforce_event: meetings, demos included). WhatId links
-- the deal (opportunity ids start with 006) and, through raw.salesforce_opportunity, the
-- account (or the account directly when WhatId is an account, 001); WhoId links the contact
-- when it is a Contact (003). Task/Event exports have no LastModifiedDate: updated_at is the
-- CreatedDate.
WITH tasks AS (
    SELECT
        t.workspace_id,
        CAST(t.id AS VARCHAR) AS source_id,
        t.source_data,
        CAST(t.created_date AS TIMESTAMP) AS created_at,
        CAST(t.what_id AS VARCHAR) AS what_id,
        CAST(t.who_id AS VARCHAR) AS who_id,
        CAST(t.owner_id AS VARCHAR) AS owner_id,
        CASE lower(coalesce(nullif(CAST(t.task_subtype AS VARCHAR), ''), CAST(t.type AS VARCHAR)))
            WHEN 'call' THEN 'call'
            WHEN 'email' THEN 'email'
            ELSE 'task'
        END AS type,
        -- ActivityDate (a date) at midnight UTC, or the creation when there is none
        coalesce(
            CAST(CAST(t.activity_date AS DATE) AS TIMESTAMP),
            CAST(t.created_date AS TIMESTAMP)
        ) AS occurred_at,
        'outbound' AS direction,
        CAST(t.subject AS VARCHAR) AS subject,
        CAST(t.status AS VARCHAR) AS outcome
    FROM raw.salesforce_task t
),
events AS (
    SELECT
        e.workspace_id,
        CAST(e.id AS VARCHAR) AS source_id,
        e.source_data,
        CAST(e.created_date AS TIMESTAMP) AS created_at,
        CAST(e.what_id AS VARCHAR) AS what_id,
        CAST(e.who_id AS VARCHAR) AS who_id,
        CAST(e.owner_id AS VARCHAR) AS owner_id,
        'meeting' AS type,
        coalesce(
            CAST(e.start_date_time AS TIMESTAMP),
            CAST(CAST(e.activity_date AS DATE) AS TIMESTAMP)
        ) AS occurred_at,
        CAST(NULL AS VARCHAR) AS direction,
        CAST(e.subject AS VARCHAR) AS subject,
        CAST(NULL AS VARCHAR) AS outcome
    FROM raw.salesforce_event e
),
unioned AS (
    SELECT * FROM tasks
    UNION ALL
    SELECT * FROM events
)
SELECT
    u.workspace_id,
    uuid5(u.workspace_id, 'salesforce', u.source_id) AS id,
    'salesforce' AS source,
    u.source_id,
    map(['salesforce'], [u.source_id]) AS external_ids,
    u.source_data,
    u.created_at,
    u.created_at AS updated_at,
    CASE WHEN u.what_id LIKE '006%' THEN uuid5(u.workspace_id, 'salesforce', u.what_id) END AS deal_id,
    uuid5(
        u.workspace_id,
        'salesforce',
        coalesce(
            nullif(CAST(o.account_id AS VARCHAR), ''),
            CASE WHEN u.what_id LIKE '001%' THEN u.what_id END
        )
    ) AS account_id,
    CASE WHEN u.who_id LIKE '003%' THEN uuid5(u.workspace_id, 'salesforce', u.who_id) END AS contact_id,
    u.type,
    u.occurred_at,
    u.direction,
    u.subject,
    u.outcome,
    uuid5(u.workspace_id, 'salesforce', nullif(u.owner_id, '')) AS owner_id
FROM unioned u
LEFT JOIN raw.salesforce_opportunity o
    ON o.workspace_id = u.workspace_id
    AND u.what_id LIKE '006%'
    AND CAST(o.id AS VARCHAR) = u.what_id
