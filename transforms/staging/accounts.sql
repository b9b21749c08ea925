-- staging.accounts: companies, one row per source record, from Salesforce Account
-- (raw.salesforce_account, deleted rows skipped) and HubSpot companies (raw.hubspot_companies).
-- `domain` is the normalized web domain: lowercase, without scheme, "www.", port, path, query.
WITH sf AS (
    SELECT
        a.workspace_id,
        'salesforce' AS source,
        CAST(a.id AS VARCHAR) AS source_id,
        a.source_data,
        CAST(a.created_date AS TIMESTAMP) AS created_at,
        CAST(a.last_modified_date AS TIMESTAMP) AS updated_at,
        CAST(a.name AS VARCHAR) AS name,
        CAST(a.website AS VARCHAR) AS web,
        CAST(a.industry AS VARCHAR) AS industry,
        CAST(CAST(a.number_of_employees AS DOUBLE) AS BIGINT) AS employee_count,
        CAST(a.annual_revenue AS DOUBLE) AS annual_revenue,
        uuid5(a.workspace_id, 'salesforce', nullif(trim(CAST(a.owner_id AS VARCHAR)), '')) AS owner_id
    FROM raw.salesforce_account a
    WHERE NOT coalesce(CAST(a.is_deleted AS BOOLEAN), false)
),
hs AS (
    SELECT
        c.workspace_id,
        'hubspot' AS source,
        CAST(c.hs_object_id AS VARCHAR) AS source_id,
        c.source_data,
        CAST(c.createdate AS TIMESTAMP) AS created_at,
        CAST(c.hs_lastmodifieddate AS TIMESTAMP) AS updated_at,
        CAST(c.name AS VARCHAR) AS name,
        CAST(c.domain AS VARCHAR) AS web,
        CAST(c.industry AS VARCHAR) AS industry,
        CAST(CAST(c.numberofemployees AS DOUBLE) AS BIGINT) AS employee_count,
        CAST(c.annualrevenue AS DOUBLE) AS annual_revenue,
        -- HubSpot exports fill hubspot_owner_id with the owner's name; staging.users keys
        -- them as 'owner:<name>'.
        uuid5(c.workspace_id, 'hubspot', 'owner:' || nullif(CAST(c.hubspot_owner_id AS VARCHAR), '')) AS owner_id
    FROM raw.hubspot_companies c
),
unioned AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
)
SELECT
    u.workspace_id,
    uuid5(u.workspace_id, u.source, u.source_id) AS id,
    u.source,
    u.source_id,
    map([u.source], [u.source_id]) AS external_ids,
    u.source_data,
    u.created_at,
    u.updated_at,
    u.name,
    nullif(
        regexp_replace(            -- trailing dot of a fully qualified name
        regexp_replace(            -- port
        regexp_replace(            -- path, query, fragment
        regexp_replace(            -- leading www.
        regexp_replace(lower(trim(u.web)), '^([a-z][a-z0-9+.-]*:)?//', ''),  -- scheme
        '^www\.', ''),
        '[/?#].*$', ''),
        ':[0-9]*$', ''),
        '\.$', ''),
        '') AS domain,
    u.industry,
    u.employee_count,
    u.annual_revenue,
    u.owner_id
FROM unioned u
