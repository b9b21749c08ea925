-- staging.contacts: people at accounts, one row per source record, from Salesforce Contact
-- (raw.salesforce_contact, deleted rows skipped) and HubSpot contacts (raw.hubspot_contacts,
-- account from `associatedcompanyid`). Emails are lowercased; `role` stays null here
-- (buying roles are per deal, in staging.deal_contacts).
WITH sf AS (
    SELECT
        c.workspace_id,
        'salesforce' AS source,
        CAST(c.id AS VARCHAR) AS source_id,
        c.source_data,
        CAST(c.created_date AS TIMESTAMP) AS created_at,
        CAST(c.last_modified_date AS TIMESTAMP) AS updated_at,
        uuid5(c.workspace_id, 'salesforce', nullif(trim(CAST(c.account_id AS VARCHAR)), '')) AS account_id,
        CAST(c.first_name AS VARCHAR) AS first_name,
        CAST(c.last_name AS VARCHAR) AS last_name,
        nullif(lower(trim(CAST(c.email AS VARCHAR))), '') AS email,
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
        uuid5(c.workspace_id, 'hubspot', nullif(trim(CAST(c.associatedcompanyid AS VARCHAR)), '')) AS account_id,
        CAST(c.firstname AS VARCHAR) AS first_name,
        CAST(c.lastname AS VARCHAR) AS last_name,
        nullif(lower(trim(CAST(c.email AS VARCHAR))), '') AS email,
        CAST(c.jobtitle AS VARCHAR) AS title
    FROM raw.hubspot_contacts c
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
    u.account_id,
    u.first_name,
    u.last_name,
    u.email,
    u.title,
    CAST(NULL AS VARCHAR) AS role
FROM unioned u
