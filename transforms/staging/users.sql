-- staging.users: CRM users (reps, managers, owners), from Salesforce User (raw.salesforce_user)
-- and the HubSpot owners. HubSpot exports owners only by name ("Deal owner", landed as
-- `hubspot_owner_id`), so a HubSpot user is each distinct owner name found in the
-- hubspot_owner_id of raw.hubspot_deals, raw.hubspot_companies and raw.hubspot_contacts, per
-- workspace, with source_id 'owner:<name>' (the key deals/accounts/contacts use for owner_id).
-- From the API, HubSpot owners are raw.hubspot_owners (id, name, email; archived owners kept
-- as inactive) with source_id 'owner:<id>', the key deals, accounts, contacts and activities
-- give a `hubspot_owner_id` that is an id; an owner name from an export that is no API
-- owner's id stays a name-only user.
-- Pipedrive users come from raw.pipedrive_users (`active_flag`, `created`, `modified`).
-- Users are not merged across CRMs: the same person in two CRMs is two rows.
WITH sf AS (
    SELECT
        u.workspace_id,
        'salesforce' AS source,
        CAST(u.id AS VARCHAR) AS source_id,
        u.source_data,
        CAST(u.created_date AS TIMESTAMP) AS created_at,
        -- the User export has no LastModifiedDate: the creation is the last known change
        CAST(u.created_date AS TIMESTAMP) AS updated_at,
        coalesce(
            nullif(CAST(u.name AS VARCHAR), ''),
            nullif(trim(concat_ws(' ', CAST(u.first_name AS VARCHAR), CAST(u.last_name AS VARCHAR))), '')
        ) AS name,
        lower(trim(CAST(u.email AS VARCHAR))) AS email,
        CAST(u.title AS VARCHAR) AS title,
        uuid5(u.workspace_id, 'salesforce', nullif(trim(CAST(u.manager_id AS VARCHAR)), '')) AS manager_id,
        CAST(u.is_active AS BOOLEAN) AS is_active
    FROM raw.salesforce_user u
),
hs_names AS (
    SELECT workspace_id, CAST(hubspot_owner_id AS VARCHAR) AS owner_name FROM raw.hubspot_deals
    UNION ALL
    SELECT workspace_id, CAST(hubspot_owner_id AS VARCHAR) FROM raw.hubspot_companies
    UNION ALL
    SELECT workspace_id, CAST(hubspot_owner_id AS VARCHAR) FROM raw.hubspot_contacts
),
hs_api AS (
    SELECT
        o.workspace_id,
        'hubspot' AS source,
        'owner:' || CAST(o.id AS VARCHAR) AS source_id,
        o.source_data,
        CAST(o.created_at AS TIMESTAMP) AS created_at,
        coalesce(CAST(o.updated_at AS TIMESTAMP), CAST(o.created_at AS TIMESTAMP)) AS updated_at,
        coalesce(
            nullif(trim(concat_ws(' ', CAST(o.first_name AS VARCHAR), CAST(o.last_name AS VARCHAR))), ''),
            lower(trim(CAST(o.email AS VARCHAR)))
        ) AS name,
        lower(trim(CAST(o.email AS VARCHAR))) AS email,
        CAST(NULL AS VARCHAR) AS title,
        CAST(NULL AS VARCHAR) AS manager_id,
        NOT (coalesce(CAST(o.archived AS BOOLEAN), false) OR coalesce(CAST(o._deleted AS BOOLEAN), false)) AS is_active
    FROM raw.hubspot_owners o
    WHERE nullif(CAST(o.id AS VARCHAR), '') IS NOT NULL
),
hs_owners AS (
    SELECT n.workspace_id, n.owner_name
    FROM hs_names n
    LEFT JOIN hs_api a
        ON a.workspace_id = n.workspace_id AND a.source_id = 'owner:' || n.owner_name
    WHERE n.owner_name IS NOT NULL AND n.owner_name <> '' AND a.source_id IS NULL
    GROUP BY n.workspace_id, n.owner_name
),
hs AS (
    SELECT
        workspace_id,
        'hubspot' AS source,
        'owner:' || owner_name AS source_id,
        concat('{"owner":"', replace(replace(owner_name, '\', '\\'), '"', '\"'), '"}') AS source_data,
        CAST(NULL AS TIMESTAMP) AS created_at,
        CAST(NULL AS TIMESTAMP) AS updated_at,
        owner_name AS name,
        CAST(NULL AS VARCHAR) AS email,
        CAST(NULL AS VARCHAR) AS title,
        CAST(NULL AS VARCHAR) AS manager_id,
        CAST(NULL AS BOOLEAN) AS is_active
    FROM hs_owners
),
pd AS (
    SELECT
        u.workspace_id,
        'pipedrive' AS source,
        CAST(u.id AS VARCHAR) AS source_id,
        u.source_data,
        CAST(u.created AS TIMESTAMP) AS created_at,
        coalesce(CAST(u.modified AS TIMESTAMP), CAST(u.created AS TIMESTAMP)) AS updated_at,
        CAST(u.name AS VARCHAR) AS name,
        lower(trim(CAST(u.email AS VARCHAR))) AS email,
        CAST(NULL AS VARCHAR) AS title,
        CAST(NULL AS VARCHAR) AS manager_id,
        CAST(u.active_flag AS BOOLEAN) AS is_active
    FROM raw.pipedrive_users u
),
unioned AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
    UNION ALL
    SELECT * FROM hs_api
    UNION ALL
    SELECT * FROM pd
)
SELECT
    u.workspace_id,
    uuid5(u.workspace_id, u.source, u.source_id) AS id,
    u.source,
    u.source_id,
    map([arrow_cast(u.source, 'Utf8')], [arrow_cast(u.source_id, 'Utf8')]) AS external_ids,
    u.source_data,
    u.created_at,
    u.updated_at,
    u.name,
    u.email,
    u.title,
    u.manager_id,
    u.is_active
FROM unioned u
