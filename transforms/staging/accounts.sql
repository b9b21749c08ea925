-- staging.accounts: companies merged across CRMs, one row per real company. The records of
-- staging.account_sources that share a `merged_id` are one company (see that model for the
-- matching rules); the row keeps the winner's id (the record of the best-ranked source in
-- seeds.source_priority), its fields (a field the winner leaves empty is taken from the
-- matched records, best-ranked first), and `external_ids` with every matched record's
-- source -> id. `match_method` says how the company's other records were matched
-- (manual, exact_domain or fuzzy_name: the strongest rule among them), 'none' when the
-- company is in one system only.
WITH members AS (
    SELECT
        m.*,
        row_number() OVER (PARTITION BY m.workspace_id, m.merged_id ORDER BY m.source_rank, m.source, m.source_id) AS pos
    FROM staging.account_sources m
),
-- one id per source (two records of one source in a company keep the first)
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
        first_value(domain ORDER BY pos) FILTER (WHERE domain IS NOT NULL) AS first_domain,
        first_value(industry ORDER BY pos) FILTER (WHERE industry IS NOT NULL) AS first_industry,
        first_value(employee_count ORDER BY pos) FILTER (WHERE employee_count IS NOT NULL) AS first_employee_count,
        first_value(annual_revenue ORDER BY pos) FILTER (WHERE annual_revenue IS NOT NULL) AS first_annual_revenue,
        min(CASE match_method WHEN 'manual' THEN 1 WHEN 'exact_domain' THEN 2 WHEN 'fuzzy_name' THEN 3 END) AS method_rank
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
    w.name,
    coalesce(w.domain, g.first_domain) AS domain,
    coalesce(w.industry, g.first_industry) AS industry,
    coalesce(w.employee_count, g.first_employee_count) AS employee_count,
    coalesce(w.annual_revenue, g.first_annual_revenue) AS annual_revenue,
    w.owner_id,
    CASE g.method_rank
        WHEN 1 THEN 'manual'
        WHEN 2 THEN 'exact_domain'
        WHEN 3 THEN 'fuzzy_name'
        ELSE 'none'
    END AS match_method
FROM members w
JOIN merged g ON g.workspace_id = w.workspace_id AND g.merged_id = w.merged_id
JOIN ids i ON i.workspace_id = w.workspace_id AND i.merged_id = w.merged_id
WHERE w.id = w.merged_id
