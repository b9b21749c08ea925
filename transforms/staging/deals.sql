-- staging.deals: every CRM's deals, one row per source deal, stages normalized through
-- seeds.stage_mappings (an unmapped stage leaves `stage` null and is reported by a check):
-- Salesforce Opportunity, HubSpot deals and Pipedrive deals (raw.pipedrive_deals, stage names
-- from raw.pipedrive_stages, pipeline names from raw.pipedrive_pipelines; a won or lost deal
-- has the raw stage 'Won' / 'Lost', its status, since Pipedrive keeps it in its last stage).
-- `account_id` is the merged account (staging.account_sources.merged_id), so deals of one
-- company in two CRMs point at the same staging.accounts row.
WITH sf AS (
    SELECT
        o.workspace_id,
        'salesforce' AS source,
        CAST(o.id AS VARCHAR) AS source_id,
        o.source_data,
        CAST(o.created_date AS TIMESTAMP) AS created_at,
        CAST(o.last_modified_date AS TIMESTAMP) AS updated_at,
        CAST(o.name AS VARCHAR) AS name,
        nullif(CAST(o.account_id AS VARCHAR), '') AS account_source_id,
        uuid5(o.workspace_id, 'salesforce', o.owner_id) AS owner_id,
        CAST(o.amount AS DOUBLE) AS amount,
        upper(coalesce(CAST(o.currency_iso_code AS VARCHAR), 'USD')) AS currency,
        CAST(o.stage_name AS VARCHAR) AS stage_raw,
        'salesforce_default' AS pipeline,
        CAST(o.probability AS DOUBLE) / 100.0 AS source_probability,
        CAST(o.close_date AS DATE) AS expected_close,
        CAST(o.is_closed AS BOOLEAN) AS is_closed,
        CAST(o.is_won AS BOOLEAN) AS is_won,
        -- The export has only the close date; the exact time is in OpportunityHistory.
        CAST(NULL AS TIMESTAMP) AS closed_at_exact,
        CAST(o.lead_source AS VARCHAR) AS lead_source,
        CAST(a.industry AS VARCHAR) AS industry
    FROM raw.salesforce_opportunity o
    LEFT JOIN raw.salesforce_account a
        ON a.workspace_id = o.workspace_id
        AND a.id = o.account_id
        AND NOT coalesce(CAST(a.is_deleted AS BOOLEAN), false)
    WHERE NOT coalesce(CAST(o.is_deleted AS BOOLEAN), false)
),
hs AS (
    SELECT
        d.workspace_id,
        'hubspot' AS source,
        CAST(d.hs_object_id AS VARCHAR) AS source_id,
        d.source_data,
        CAST(d.createdate AS TIMESTAMP) AS created_at,
        CAST(d.hs_lastmodifieddate AS TIMESTAMP) AS updated_at,
        CAST(d.dealname AS VARCHAR) AS name,
        nullif(split_part(CAST(d.associated_company_ids AS VARCHAR), ';', 1), '') AS account_source_id,
        -- exports fill hubspot_owner_id with the owner's name; staging.users keys it 'owner:<name>'
        uuid5(d.workspace_id, 'hubspot', 'owner:' || nullif(CAST(d.hubspot_owner_id AS VARCHAR), '')) AS owner_id,
        CAST(d.amount AS DOUBLE) AS amount,
        'USD' AS currency,
        CAST(d.dealstage AS VARCHAR) AS stage_raw,
        CAST(d.pipeline AS VARCHAR) AS pipeline,
        CAST(NULL AS DOUBLE) AS source_probability,
        CAST(d.closedate AS DATE) AS expected_close,
        CAST(d.hs_is_closed AS BOOLEAN) AS is_closed,
        CAST(d.hs_is_closed_won AS BOOLEAN) AS is_won,
        coalesce(
            CAST(d.hs_v2_date_entered_closedwon AS TIMESTAMP),
            CAST(d.hs_v2_date_entered_closedlost AS TIMESTAMP)
        ) AS closed_at_exact,
        CAST(d.lead_source AS VARCHAR) AS lead_source,
        CAST(c.industry AS VARCHAR) AS industry
    FROM raw.hubspot_deals d
    LEFT JOIN raw.hubspot_companies c
        ON c.workspace_id = d.workspace_id
        AND CAST(c.hs_object_id AS VARCHAR) = split_part(CAST(d.associated_company_ids AS VARCHAR), ';', 1)
),
pd AS (
    SELECT
        d.workspace_id,
        'pipedrive' AS source,
        CAST(d.id AS VARCHAR) AS source_id,
        d.source_data,
        CAST(d.add_time AS TIMESTAMP) AS created_at,
        CAST(d.update_time AS TIMESTAMP) AS updated_at,
        CAST(d.title AS VARCHAR) AS name,
        nullif(CAST(d.org_id AS VARCHAR), '') AS account_source_id,
        uuid5(d.workspace_id, 'pipedrive', nullif(CAST(d.owner_id AS VARCHAR), '')) AS owner_id,
        CAST(d.value AS DOUBLE) AS amount,
        upper(coalesce(nullif(CAST(d.currency AS VARCHAR), ''), 'USD')) AS currency,
        CASE lower(CAST(d.status AS VARCHAR))
            WHEN 'won' THEN 'Won'
            WHEN 'lost' THEN 'Lost'
            -- a stage the stages stream does not name stays visible as its id
            ELSE coalesce(CAST(s.name AS VARCHAR), CAST(d.stage_id AS VARCHAR))
        END AS stage_raw,
        coalesce(CAST(pl.name AS VARCHAR), CAST(d.pipeline_id AS VARCHAR)) AS pipeline,
        coalesce(CAST(d.probability AS DOUBLE), CAST(s.deal_probability AS DOUBLE)) / 100.0 AS source_probability,
        CAST(d.expected_close_date AS DATE) AS expected_close,
        lower(CAST(d.status AS VARCHAR)) IN ('won', 'lost') AS is_closed,
        lower(CAST(d.status AS VARCHAR)) = 'won' AS is_won,
        coalesce(CAST(d.won_time AS TIMESTAMP), CAST(d.lost_time AS TIMESTAMP), CAST(d.close_time AS TIMESTAMP)) AS closed_at_exact,
        CAST(d.cf_lead_source AS VARCHAR) AS lead_source,
        CAST(o.cf_industry AS VARCHAR) AS industry
    FROM raw.pipedrive_deals d
    LEFT JOIN raw.pipedrive_stages s
        ON s.workspace_id = d.workspace_id AND CAST(s.id AS VARCHAR) = CAST(d.stage_id AS VARCHAR)
    LEFT JOIN raw.pipedrive_pipelines pl
        ON pl.workspace_id = d.workspace_id AND CAST(pl.id AS VARCHAR) = CAST(d.pipeline_id AS VARCHAR)
    LEFT JOIN raw.pipedrive_organizations o
        ON o.workspace_id = d.workspace_id AND CAST(o.id AS VARCHAR) = CAST(d.org_id AS VARCHAR)
    WHERE NOT coalesce(CAST(d._deleted AS BOOLEAN), false)
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
    u.updated_at,
    u.name,
    -- an account the lake does not hold keeps the id it would have
    coalesce(a.merged_id, uuid5(u.workspace_id, u.source, u.account_source_id)) AS account_id,
    u.owner_id,
    u.amount,
    u.currency,
    u.amount * fx.usd_rate AS amount_usd,
    m.stage,
    u.stage_raw,
    u.pipeline,
    coalesce(CAST(m.probability AS DOUBLE), u.source_probability) AS probability,
    u.expected_close,
    CASE
        WHEN u.is_closed THEN coalesce(u.closed_at_exact, CAST(u.expected_close AS TIMESTAMP))
    END AS closed_at,
    u.is_closed,
    u.is_won,
    u.lead_source,
    CASE
        WHEN u.amount * fx.usd_rate < 15000 THEN 'smb'
        WHEN u.amount * fx.usd_rate < 100000 THEN 'mid_market'
        WHEN u.amount * fx.usd_rate >= 100000 THEN 'enterprise'
    END AS segment,
    u.industry
FROM unioned u
LEFT JOIN seeds.stage_mappings m
    ON m.source = u.source AND m.raw_stage = u.stage_raw
LEFT JOIN seeds.currency_rates fx
    ON fx.currency = u.currency
LEFT JOIN staging.account_sources a
    ON a.workspace_id = u.workspace_id
    AND a.id = uuid5(u.workspace_id, u.source, u.account_source_id)
