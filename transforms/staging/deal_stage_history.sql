-- staging.deal_stage_history: one row per stage a deal entered, from Salesforce
-- OpportunityHistory (rows that do not change the stage, e.g. amount edits, are skipped) and
-- HubSpot's `hs_v2_date_entered_<stage id>` properties (exports' "Date entered <stage>"
-- columns; HubSpot keeps the latest entry per stage).
WITH sf_rows AS (
    SELECT
        h.workspace_id,
        'salesforce' AS source,
        CAST(h.id AS VARCHAR) AS source_id,
        CAST(h.opportunity_id AS VARCHAR) AS deal_source_id,
        CAST(h.stage_name AS VARCHAR) AS stage_raw,
        CAST(h.created_date AS TIMESTAMP) AS entered_at,
        h.source_data,
        CAST(h.system_modstamp AS TIMESTAMP) AS updated_at
    FROM raw.salesforce_opportunity_history h
    WHERE NOT coalesce(CAST(h.is_deleted AS BOOLEAN), false)
),
sf AS (
    SELECT * FROM (
        SELECT
            r.*,
            lag(r.stage_raw) OVER (
                PARTITION BY r.workspace_id, r.deal_source_id ORDER BY r.entered_at, r.source_id
            ) AS previous_raw
        FROM sf_rows r
    ) x
    WHERE previous_raw IS NULL OR previous_raw <> stage_raw
),
hs_entered AS (
    SELECT workspace_id, CAST(hs_object_id AS VARCHAR) AS deal_source_id, 'Appointment Scheduled' AS stage_raw, CAST(hs_v2_date_entered_appointmentscheduled AS TIMESTAMP) AS entered_at, source_data, CAST(hs_lastmodifieddate AS TIMESTAMP) AS updated_at FROM raw.hubspot_deals
    UNION ALL
    SELECT workspace_id, CAST(hs_object_id AS VARCHAR), 'Qualified To Buy', CAST(hs_v2_date_entered_qualifiedtobuy AS TIMESTAMP), source_data, CAST(hs_lastmodifieddate AS TIMESTAMP) FROM raw.hubspot_deals
    UNION ALL
    SELECT workspace_id, CAST(hs_object_id AS VARCHAR), 'Presentation Scheduled', CAST(hs_v2_date_entered_presentationscheduled AS TIMESTAMP), source_data, CAST(hs_lastmodifieddate AS TIMESTAMP) FROM raw.hubspot_deals
    UNION ALL
    SELECT workspace_id, CAST(hs_object_id AS VARCHAR), 'Decision Maker Bought-In', CAST(hs_v2_date_entered_decisionmakerboughtin AS TIMESTAMP), source_data, CAST(hs_lastmodifieddate AS TIMESTAMP) FROM raw.hubspot_deals
    UNION ALL
    SELECT workspace_id, CAST(hs_object_id AS VARCHAR), 'Contract Sent', CAST(hs_v2_date_entered_contractsent AS TIMESTAMP), source_data, CAST(hs_lastmodifieddate AS TIMESTAMP) FROM raw.hubspot_deals
    UNION ALL
    SELECT workspace_id, CAST(hs_object_id AS VARCHAR), 'Closed Won', CAST(hs_v2_date_entered_closedwon AS TIMESTAMP), source_data, CAST(hs_lastmodifieddate AS TIMESTAMP) FROM raw.hubspot_deals
    UNION ALL
    SELECT workspace_id, CAST(hs_object_id AS VARCHAR), 'Closed Lost', CAST(hs_v2_date_entered_closedlost AS TIMESTAMP), source_data, CAST(hs_lastmodifieddate AS TIMESTAMP) FROM raw.hubspot_deals
),
hs AS (
    SELECT
        workspace_id,
        'hubspot' AS source,
        deal_source_id || ':' || stage_raw AS source_id,
        deal_source_id,
        stage_raw,
        entered_at,
        source_data,
        updated_at,
        CAST(NULL AS VARCHAR) AS previous_raw
    FROM hs_entered
    WHERE entered_at IS NOT NULL
),
transitions AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
),
ordered AS (
    SELECT
        t.*,
        m.stage AS to_stage,
        lag(m.stage) OVER w AS from_stage,
        lag(t.entered_at) OVER w AS previous_at
    FROM transitions t
    LEFT JOIN seeds.stage_mappings m
        ON m.source = t.source AND m.raw_stage = t.stage_raw
    WINDOW w AS (PARTITION BY t.workspace_id, t.source, t.deal_source_id ORDER BY t.entered_at, t.source_id)
)
SELECT
    workspace_id,
    uuid5(workspace_id, source, source_id) AS id,
    source,
    source_id,
    map([source], [source_id]) AS external_ids,
    source_data,
    entered_at AS created_at,
    updated_at,
    uuid5(workspace_id, source, deal_source_id) AS deal_id,
    from_stage,
    to_stage,
    stage_raw AS to_stage_raw,
    entered_at AS transitioned_at,
    (date_part('epoch', entered_at) - date_part('epoch', previous_at)) / 86400.0 AS duration_days,
    CAST(NULL AS VARCHAR) AS trigger_activity_id
FROM ordered
