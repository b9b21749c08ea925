-- staging.deal_stage_history: one row per stage a deal entered, from
--   - Salesforce OpportunityHistory (rows that do not change the stage, e.g. amount edits, are
--     skipped);
--   - HubSpot's `hs_v2_date_entered_<stage id>` properties (exports' "Date entered <stage>"
--     columns; HubSpot keeps the latest entry per stage);
--   - Pipedrive: the deal's first stage at its add_time (the old value of its first stage
--     change, else its current stage), each stage change of raw.pipedrive_deal_stage_changes
--     (the deal flow's `stage_id` changes, stage ids named through raw.pipedrive_stages), and
--     'Won' / 'Lost' at won_time / lost_time (a status change, not in the flow's stage changes);
--   - file snapshot diffs (raw.salesforce_stage_snapshots, raw.hubspot_stage_snapshots: the
--     stage each re-import of a deals file found changed), for deals whose source gives no
--     history of its own (a native row of the deal makes its snapshot rows redundant).
-- `duration_days` is the time spent in from_stage: from the previous row's transition to
-- this one. `trigger_activity_id` is the deal's activity (staging.activities) that occurred
-- nearest before the transition (at or before it; the latest, then the lowest id).
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
pd_deals AS (
    SELECT
        d.workspace_id,
        CAST(d.id AS VARCHAR) AS deal_source_id,
        CAST(d.stage_id AS VARCHAR) AS stage_id,
        lower(CAST(d.status AS VARCHAR)) AS status,
        CAST(d.add_time AS TIMESTAMP) AS added_at,
        coalesce(CAST(d.won_time AS TIMESTAMP), CAST(d.lost_time AS TIMESTAMP), CAST(d.close_time AS TIMESTAMP)) AS closed_at,
        CAST(d.update_time AS TIMESTAMP) AS updated_at,
        d.source_data
    FROM raw.pipedrive_deals d
    WHERE NOT coalesce(CAST(d._deleted AS BOOLEAN), false)
      AND NOT coalesce(CAST(d.is_deleted AS BOOLEAN), false)
      AND coalesce(lower(CAST(d.status AS VARCHAR)), '') <> 'deleted'
),
pd_changes AS (
    SELECT
        c.workspace_id,
        CAST(c.id AS VARCHAR) AS change_id,
        CAST(c.deal_id AS VARCHAR) AS deal_source_id,
        CAST(c.old_value AS VARCHAR) AS old_stage_id,
        CAST(c.new_value AS VARCHAR) AS new_stage_id,
        CAST(c.log_time AS TIMESTAMP) AS changed_at,
        c.source_data,
        row_number() OVER (
            PARTITION BY c.workspace_id, CAST(c.deal_id AS VARCHAR)
            ORDER BY CAST(c.log_time AS TIMESTAMP), CAST(c.id AS VARCHAR)
        ) AS n
    FROM raw.pipedrive_deal_stage_changes c
),
pd_stage_names AS (
    SELECT workspace_id, CAST(id AS VARCHAR) AS stage_id, CAST(name AS VARCHAR) AS name
    FROM raw.pipedrive_stages
),
pd_steps AS (
    -- the first stage, at the deal's creation
    SELECT
        d.workspace_id, d.deal_source_id, d.deal_source_id || ':created' AS source_id,
        coalesce(c.old_stage_id, d.stage_id) AS stage_id, CAST(NULL AS VARCHAR) AS status_stage,
        d.added_at AS entered_at, d.source_data, d.updated_at
    FROM pd_deals d
    LEFT JOIN pd_changes c
        ON c.workspace_id = d.workspace_id AND c.deal_source_id = d.deal_source_id AND c.n = 1
    UNION ALL
    SELECT
        c.workspace_id, c.deal_source_id, c.change_id, c.new_stage_id, CAST(NULL AS VARCHAR),
        c.changed_at, c.source_data, c.changed_at AS updated_at
    FROM pd_changes c
    UNION ALL
    -- won / lost: Pipedrive closes a deal by status, leaving its stage as it was
    SELECT
        d.workspace_id, d.deal_source_id, d.deal_source_id || ':' || d.status, CAST(NULL AS VARCHAR),
        CASE d.status WHEN 'won' THEN 'Won' ELSE 'Lost' END,
        d.closed_at, d.source_data, d.updated_at
    FROM pd_deals d
    WHERE d.status IN ('won', 'lost') AND d.closed_at IS NOT NULL
),
pd AS (
    SELECT
        p.workspace_id,
        'pipedrive' AS source,
        p.source_id,
        p.deal_source_id,
        coalesce(p.status_stage, n.name, p.stage_id) AS stage_raw,
        p.entered_at,
        p.source_data,
        p.updated_at,
        CAST(NULL AS VARCHAR) AS previous_raw
    FROM pd_steps p
    LEFT JOIN pd_stage_names n ON n.workspace_id = p.workspace_id AND n.stage_id = p.stage_id
    WHERE p.entered_at IS NOT NULL
),
native AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
    UNION ALL
    SELECT * FROM pd
),
snapshot_rows AS (
    SELECT workspace_id, 'salesforce' AS source, CAST(deal_key AS VARCHAR) AS deal_source_id,
           CAST(to_stage AS VARCHAR) AS stage_raw, CAST(observed_at AS TIMESTAMP) AS entered_at,
           CAST(batch_id AS VARCHAR) AS batch_id
    FROM raw.salesforce_stage_snapshots
    UNION ALL
    SELECT workspace_id, 'hubspot', CAST(deal_key AS VARCHAR), CAST(to_stage AS VARCHAR),
           CAST(observed_at AS TIMESTAMP), CAST(batch_id AS VARCHAR)
    FROM raw.hubspot_stage_snapshots
),
snapshots AS (
    SELECT
        s.workspace_id,
        s.source,
        'snapshot:' || s.deal_source_id || ':' || CAST(CAST(date_part('epoch', s.entered_at) AS BIGINT) AS VARCHAR) AS source_id,
        s.deal_source_id,
        s.stage_raw,
        s.entered_at,
        concat('{"batch_id":"', s.batch_id, '","deal_key":"', s.deal_source_id, '","to_stage":"', s.stage_raw, '"}') AS source_data,
        s.entered_at AS updated_at,
        CAST(NULL AS VARCHAR) AS previous_raw
    FROM snapshot_rows s
    WHERE s.stage_raw IS NOT NULL AND s.entered_at IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM native n
          WHERE n.workspace_id = s.workspace_id
            AND n.source = s.source
            AND n.deal_source_id = s.deal_source_id
      )
),
transitions AS (
    SELECT * FROM native
    UNION ALL
    SELECT * FROM snapshots
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
),
history AS (
    SELECT
        workspace_id,
        uuid5(workspace_id, source, source_id) AS id,
        source,
        source_id,
        map([arrow_cast(source, 'Utf8')], [arrow_cast(source_id, 'Utf8')]) AS external_ids,
        source_data,
        entered_at AS created_at,
        updated_at,
        uuid5(workspace_id, source, deal_source_id) AS deal_id,
        from_stage,
        to_stage,
        stage_raw AS to_stage_raw,
        entered_at AS transitioned_at,
        (date_part('epoch', entered_at) - date_part('epoch', previous_at)) / 86400.0 AS duration_days
    FROM ordered
),
-- The trigger of each transition is found in one pass per deal instead of a join of every
-- transition with every earlier activity (quadratic per deal, and a hash join that cannot
-- spill): transitions and the deal's activities in one stream, in time order (an activity
-- at the transition's own time before it; among simultaneous activities the lowest id
-- last), and each transition takes the last activity id seen.
trigger_events AS (
    SELECT workspace_id, deal_id, transitioned_at AS at, 1 AS kind, id AS history_id,
           CAST(NULL AS VARCHAR) AS activity_id
    FROM history
    UNION ALL
    SELECT workspace_id, deal_id, occurred_at, 0, CAST(NULL AS VARCHAR), id
    FROM staging.activities
    WHERE deal_id IS NOT NULL AND occurred_at IS NOT NULL
),
triggers AS (
    SELECT workspace_id, history_id AS id, activity_id FROM (
        SELECT
            workspace_id,
            kind,
            history_id,
            last_value(activity_id) IGNORE NULLS OVER (
                PARTITION BY workspace_id, deal_id
                ORDER BY at, kind, activity_id DESC NULLS FIRST
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
            ) AS activity_id
        FROM trigger_events
    ) e
    WHERE kind = 1
)
SELECT
    r.*,
    t.activity_id AS trigger_activity_id
-- (the narrow trigger rows are the hash table; the wide history rows stream past it)
FROM triggers t
RIGHT JOIN history r ON t.workspace_id = r.workspace_id AND t.id = r.id
