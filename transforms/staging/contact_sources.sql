-- staging.contact_sources: people at accounts, one row per source record, before the merge:
-- Salesforce Contact (raw.salesforce_contact, deleted rows skipped), HubSpot contacts
-- (raw.hubspot_contacts, account from `associatedcompanyid`) and Pipedrive persons
-- (raw.pipedrive_persons, tombstones skipped; the first address of `emails`, the
-- organization from `org_id`). Emails are lowercased. `account_id` is the merged account
-- (staging.account_sources.merged_id). Records with the same email are one person
-- (staging.contacts): `merged_id` is the id of the record of the best-ranked source
-- (seeds.source_priority, entity 'contacts'; then source name, then source id) with that email,
-- `match_method` is 'email' when another source holds the same email, else 'none'.
WITH sf AS (
    SELECT
        c.workspace_id,
        'salesforce' AS source,
        CAST(c.id AS VARCHAR) AS source_id,
        c.source_data,
        CAST(c.created_date AS TIMESTAMP) AS created_at,
        CAST(c.last_modified_date AS TIMESTAMP) AS updated_at,
        nullif(trim(CAST(c.account_id AS VARCHAR)), '') AS account_source_id,
        CAST(c.first_name AS VARCHAR) AS first_name,
        CAST(c.last_name AS VARCHAR) AS last_name,
        CAST(c.email AS VARCHAR) AS email,
        CAST(c.title AS VARCHAR) AS title
    FROM raw.salesforce_contact c
    WHERE NOT coalesce(CAST(c.is_deleted AS BOOLEAN), false)
),
hs AS (
    SELECT
        c.workspace_id,
        'hubspot' AS source,
        CAST(c.hs_object_id AS VARCHAR) AS source_id,
        c.source_data,
        CAST(c.createdate AS TIMESTAMP) AS created_at,
        CAST(c.lastmodifieddate AS TIMESTAMP) AS updated_at,
        nullif(trim(CAST(c.associatedcompanyid AS VARCHAR)), '') AS account_source_id,
        CAST(c.firstname AS VARCHAR) AS first_name,
        CAST(c.lastname AS VARCHAR) AS last_name,
        CAST(c.email AS VARCHAR) AS email,
        CAST(c.jobtitle AS VARCHAR) AS title
    FROM raw.hubspot_contacts c
),
pd AS (
    SELECT
        p.workspace_id,
        'pipedrive' AS source,
        CAST(p.id AS VARCHAR) AS source_id,
        p.source_data,
        CAST(p.add_time AS TIMESTAMP) AS created_at,
        CAST(p.update_time AS TIMESTAMP) AS updated_at,
        nullif(CAST(p.org_id AS VARCHAR), '') AS account_source_id,
        CAST(p.first_name AS VARCHAR) AS first_name,
        CAST(p.last_name AS VARCHAR) AS last_name,
        -- `emails` lands as JSON text: [{"value": "a@b.com", "primary": true, ...}]
        coalesce(
            regexp_match(CAST(p.emails AS VARCHAR), '"value"\s*:\s*"([^"]+)"')[1],
            CAST(p.email AS VARCHAR)
        ) AS email,
        CAST(p.job_title AS VARCHAR) AS title
    FROM raw.pipedrive_persons p
    WHERE NOT coalesce(CAST(p._deleted AS BOOLEAN), false)
      AND NOT coalesce(CAST(p.is_deleted AS BOOLEAN), false)
),
unioned AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
    UNION ALL
    SELECT * FROM pd
),
priority AS (
    SELECT trim(CAST(source AS VARCHAR)) AS source, CAST(priority AS BIGINT) AS priority
    FROM seeds.source_priority
    WHERE lower(trim(CAST(entity AS VARCHAR))) = 'contacts'
),
records AS (
    SELECT
        u.workspace_id,
        uuid5(u.workspace_id, u.source, u.source_id) AS id,
        u.source,
        u.source_id,
        u.source_data,
        u.created_at,
        u.updated_at,
        -- an account the lake does not hold keeps the id it would have
        coalesce(a.merged_id, uuid5(u.workspace_id, u.source, u.account_source_id)) AS account_id,
        u.first_name,
        u.last_name,
        nullif(lower(trim(u.email)), '') AS email,
        u.title,
        coalesce(p.priority, 1000000) AS source_rank
    FROM unioned u
    LEFT JOIN priority p ON p.source = u.source
    LEFT JOIN staging.account_sources a
        ON a.workspace_id = u.workspace_id
        AND a.id = uuid5(u.workspace_id, u.source, u.account_source_id)
),
by_email AS (
    SELECT
        r.workspace_id,
        r.id,
        first_value(r.id) OVER w AS merged_id,
        count(DISTINCT r.source) OVER (PARTITION BY r.workspace_id, r.email) AS sources
    FROM records r
    WHERE r.email IS NOT NULL
    WINDOW w AS (PARTITION BY r.workspace_id, r.email ORDER BY r.source_rank, r.source, r.source_id)
)
SELECT
    r.workspace_id,
    r.id,
    r.source,
    r.source_id,
    map([arrow_cast(r.source, 'Utf8')], [arrow_cast(r.source_id, 'Utf8')]) AS external_ids,
    r.source_data,
    r.created_at,
    r.updated_at,
    r.account_id,
    r.first_name,
    r.last_name,
    r.email,
    r.title,
    CAST(NULL AS VARCHAR) AS role,
    r.source_rank,
    coalesce(e.merged_id, r.id) AS merged_id,
    CASE WHEN e.sources > 1 THEN 'email' ELSE 'none' END AS match_method
FROM records r
LEFT JOIN by_email e ON e.workspace_id = r.workspace_id AND e.id = r.id
