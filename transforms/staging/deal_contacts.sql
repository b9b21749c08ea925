-- staging.deal_contacts: the stakeholders of deals, from Salesforce OpportunityContactRole
-- (raw.salesforce_opportunity_contact_role). `role` is the Role picklist value in lower snake
-- case ('Economic Buyer' -> 'economic_buyer', custom 'Champion' -> 'champion'); the CRM states
-- it, so confidence is 1. HubSpot has no contact roles. `contact_id` is the merged contact
-- (staging.contact_sources.merged_id).
SELECT
    r.workspace_id,
    uuid5(r.workspace_id, 'salesforce', CAST(r.id AS VARCHAR)) AS id,
    'salesforce' AS source,
    CAST(r.id AS VARCHAR) AS source_id,
    map([arrow_cast('salesforce', 'Utf8')], [arrow_cast(CAST(r.id AS VARCHAR), 'Utf8')]) AS external_ids,
    r.source_data,
    CAST(r.created_date AS TIMESTAMP) AS created_at,
    CAST(r.created_date AS TIMESTAMP) AS updated_at,
    uuid5(r.workspace_id, 'salesforce', CAST(r.opportunity_id AS VARCHAR)) AS deal_id,
    coalesce(c.merged_id, uuid5(r.workspace_id, 'salesforce', CAST(r.contact_id AS VARCHAR))) AS contact_id,
    nullif(
        btrim(regexp_replace(lower(trim(CAST(r.role AS VARCHAR))), '[^a-z0-9]+', '_', 'g'), '_'),
        '') AS role,
    CAST(r.is_primary AS BOOLEAN) AS is_primary,
    CAST(1.0 AS DOUBLE) AS confidence
FROM raw.salesforce_opportunity_contact_role r
LEFT JOIN staging.contact_sources c
    ON c.workspace_id = r.workspace_id
    AND c.id = uuid5(r.workspace_id, 'salesforce', CAST(r.contact_id AS VARCHAR))
WHERE nullif(CAST(r.opportunity_id AS VARCHAR), '') IS NOT NULL
  AND nullif(CAST(r.contact_id AS VARCHAR), '') IS NOT NULL
