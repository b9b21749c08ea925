-- staging.contacts: people merged across CRMs by lowercased email, one row per person. The
-- records of staging.contact_sources sharing a `merged_id` are one person; the row keeps the
-- winner's id and fields (the record of the best-ranked source in seeds.source_priority), an
-- account or title the winner lacks from the other records, and `external_ids` with every
-- record's source -> id. `match_method` is 'email' when several systems hold the person, else
-- 'none'. `role` stays null (buying roles are per deal, in staging.deal_contacts).
WITH members AS (
    SELECT
        m.*,
        row_number() OVER (PARTITION BY m.workspace_id, m.merged_id ORDER BY m.source_rank, m.source, m.source_id) AS pos
    FROM staging.contact_sources m
),
per_source AS (
    SELECT workspace_id, merged_id, source, min(pos) AS pos, first_value(source_id ORDER BY pos) AS source_id
    FROM members
    GROUP BY workspace_id, merged_id, source
),
ids AS (
    SELECT
        workspace_id,
        merged_id,
        -- best-ranked source first; Utf8, not Utf8View: DataFusion 55's map() copies whole
        -- view buffers per row (quadratic)
        map(
            array_agg(arrow_cast(source, 'Utf8') ORDER BY pos),
            array_agg(arrow_cast(source_id, 'Utf8') ORDER BY pos)
        ) AS external_ids
    FROM per_source
    GROUP BY workspace_id, merged_id
),
merged AS (
    SELECT
        workspace_id,
        merged_id,
        first_value(account_id ORDER BY pos) FILTER (WHERE account_id IS NOT NULL) AS first_account_id,
        first_value(title ORDER BY pos) FILTER (WHERE title IS NOT NULL) AS first_title
    FROM members
    GROUP BY workspace_id, merged_id
)
SELECT
    w.workspace_id,
    w.id,
    w.source,
    w.source_id,
    i.external_ids,
    w.source_data,
    w.created_at,
    w.updated_at,
    coalesce(w.account_id, g.first_account_id) AS account_id,
    w.first_name,
    w.last_name,
    w.email,
    coalesce(w.title, g.first_title) AS title,
    w.role,
    w.match_method
FROM members w
JOIN merged g ON g.workspace_id = w.workspace_id AND g.merged_id = w.merged_id
JOIN ids i ON i.workspace_id = w.workspace_id AND i.merged_id = w.merged_id
WHERE w.id = w.merged_id
