-- staging.deal_contacts: the stakeholders of deals, from every CRM that links contacts to deals:
--   Salesforce OpportunityContactRole (raw.salesforce_opportunity_contact_role): `role` is the
--   Role picklist value in lower snake case ('Economic Buyer' -> 'economic_buyer', custom
--   'Champion' -> 'champion'); the CRM states it, so confidence is 1.
--   HubSpot deal-to-contact associations (raw.hubspot_deals.associated_contact_ids, `;`-joined):
--   one row per associated contact, with no role (association labels are not landed) and so no
--   confidence; is_primary unknown.
--   Pipedrive's deal person (raw.pipedrive_deals.person_id): the deal's primary contact, no role.
-- `contact_id` is the merged contact (staging.contact_sources.merged_id); the id of a HubSpot or
-- Pipedrive row is the UUIDv5 of '<deal id>:<contact id>' in its source.
WITH sf AS (
    SELECT
        r.workspace_id,
        'salesforce' AS source,
        CAST(r.id AS VARCHAR) AS source_id,
        r.source_data,
        CAST(r.created_date AS TIMESTAMP) AS created_at,
        CAST(r.opportunity_id AS VARCHAR) AS deal_source_id,
        CAST(r.contact_id AS VARCHAR) AS contact_source_id,
        nullif(
            btrim(regexp_replace(lower(trim(CAST(r.role AS VARCHAR))), '[^a-z0-9]+', '_', 'g'), '_'),
            '') AS role,
        CAST(r.is_primary AS BOOLEAN) AS is_primary,
        CAST(1.0 AS DOUBLE) AS confidence
    FROM raw.salesforce_opportunity_contact_role r
),
hs_links AS (
    SELECT
        d.workspace_id,
        CAST(d.hs_object_id AS VARCHAR) AS deal_source_id,
        coalesce(CAST(d.createdate AS TIMESTAMP), CAST(d.hs_lastmodifieddate AS TIMESTAMP)) AS created_at,
        unnest(string_to_array(CAST(d.associated_contact_ids AS VARCHAR), ';')) AS contact_source_id
    FROM raw.hubspot_deals d
    WHERE nullif(CAST(d.associated_contact_ids AS VARCHAR), '') IS NOT NULL
),
hs AS (
    SELECT
        l.workspace_id,
        'hubspot' AS source,
        l.deal_source_id || ':' || trim(l.contact_source_id) AS source_id,
        concat(
            '{"deal":"', replace(replace(l.deal_source_id, '\', '\\'), '"', '\"'),
            '","contact":"', replace(replace(trim(l.contact_source_id), '\', '\\'), '"', '\"'), '"}'
        ) AS source_data,
        l.created_at,
        l.deal_source_id,
        trim(l.contact_source_id) AS contact_source_id,
        CAST(NULL AS VARCHAR) AS role,
        CAST(NULL AS BOOLEAN) AS is_primary,
        CAST(NULL AS DOUBLE) AS confidence
    FROM hs_links l
),
pd AS (
    SELECT
        d.workspace_id,
        'pipedrive' AS source,
        CAST(d.id AS VARCHAR) || ':' || CAST(d.person_id AS VARCHAR) AS source_id,
        concat('{"deal":"', CAST(d.id AS VARCHAR), '","person":"', CAST(d.person_id AS VARCHAR), '"}') AS source_data,
        CAST(d.add_time AS TIMESTAMP) AS created_at,
        CAST(d.id AS VARCHAR) AS deal_source_id,
        CAST(d.person_id AS VARCHAR) AS contact_source_id,
        CAST(NULL AS VARCHAR) AS role,
        true AS is_primary,
        CAST(NULL AS DOUBLE) AS confidence
    FROM raw.pipedrive_deals d
    WHERE nullif(CAST(d.person_id AS VARCHAR), '') IS NOT NULL
      AND NOT coalesce(CAST(d._deleted AS BOOLEAN), false)
      AND NOT coalesce(CAST(d.is_deleted AS BOOLEAN), false)
      AND coalesce(lower(CAST(d.status AS VARCHAR)), '') <> 'deleted'
),
unioned AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
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
    u.created_at AS updated_at,
    uuid5(u.workspace_id, u.source, u.deal_source_id) AS deal_id,
    coalesce(c.merged_id, uuid5(u.workspace_id, u.source, u.contact_source_id)) AS contact_id,
    u.role,
    u.is_primary,
    u.confidence
FROM unioned u
LEFT JOIN staging.contact_sources c
    ON c.workspace_id = u.workspace_id
    AND c.id = uuid5(u.workspace_id, u.source, u.contact_source_id)
WHERE nullif(u.deal_source_id, '') IS NOT NULL
  AND nullif(u.contact_source_id, '') IS NOT NULL
