-- staging.account_sources: companies, one row per source record, before the multi-CRM merge:
-- Salesforce Account (raw.salesforce_account, deleted rows skipped), HubSpot companies
-- (raw.hubspot_companies) and Pipedrive organizations (raw.pipedrive_organizations, tombstones
-- skipped; the web address from a custom field named "Website", `cf_website`).
-- `domain` is the normalized web domain (normalize_domain: lowercase, no scheme, "www.", port,
-- path); `name_key` the normalized company name the matcher compares (normalize_company).
-- Each record's place in the merge (staging.accounts) is in `merged_id` / `match_method`,
-- computed here so that deals, contacts and activities can point at the merged account:
--   1. source priority from seeds.source_priority (entity 'accounts'; lower wins; a source
--      not listed ranks after every listed one, then by name);
--   2. a record is matched to records of better-ranked sources: by the manual seed
--      seeds.account_matches (a person's word overrides the matcher), else by exact domain,
--      else by normalize_company name with jaro_winkler >= 0.90 when at least one of the two has
--      no domain (two different known domains are two companies: on the generated demo org,
--      name similarity alone merged "Westmoor Industries" into "Westmark Industries Corp.");
--      names are compared within the first three characters of the name key (blocking), so
--      the comparison stays near-linear;
--   3. its parent is the best-ranked record it matches (then the lowest source id); the
--      winner is the end of the parent chain; merged_id = the winner's id.
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
pd AS (
    SELECT
        o.workspace_id,
        'pipedrive' AS source,
        CAST(o.id AS VARCHAR) AS source_id,
        o.source_data,
        CAST(o.add_time AS TIMESTAMP) AS created_at,
        CAST(o.update_time AS TIMESTAMP) AS updated_at,
        CAST(o.name AS VARCHAR) AS name,
        CAST(o.cf_website AS VARCHAR) AS web,
        CAST(o.cf_industry AS VARCHAR) AS industry,
        CAST(CAST(o.cf_employees AS DOUBLE) AS BIGINT) AS employee_count,
        CAST(CAST(o.cf_annual_revenue AS DOUBLE) AS DOUBLE) AS annual_revenue,
        uuid5(o.workspace_id, 'pipedrive', nullif(CAST(o.owner_id AS VARCHAR), '')) AS owner_id
    FROM raw.pipedrive_organizations o
    WHERE NOT coalesce(CAST(o._deleted AS BOOLEAN), false)
      AND NOT coalesce(CAST(o.is_deleted AS BOOLEAN), false)
),
unioned AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
    UNION ALL
    SELECT * FROM pd
),
priority AS (
    SELECT trim(CAST(source AS VARCHAR)) AS source, CAST(priority AS BIGINT) AS priority
    FROM seeds.source_priority
    WHERE lower(trim(CAST(entity AS VARCHAR))) = 'accounts'
),
records AS (
    SELECT
        u.*,
        uuid5(u.workspace_id, u.source, u.source_id) AS id,
        normalize_domain(u.web) AS domain,
        normalize_company(u.name) AS name_key,
        coalesce(p.priority, 1000000) AS source_rank
    FROM unioned u
    LEFT JOIN priority p ON p.source = u.source
),
-- the fuzzy matcher's input: names compared only within the first three characters of the
-- name key (blocking)
name_keys AS (
    SELECT workspace_id, id, source, source_id, source_rank, domain, name_key,
           substr(name_key, 1, 3) AS block
    FROM records
    WHERE name_key <> ''
),
manual AS (
    SELECT
        trim(CAST(m.source AS VARCHAR)) AS source,
        trim(CAST(m.source_id AS VARCHAR)) AS source_id,
        trim(CAST(m.matches_source AS VARCHAR)) AS matches_source,
        trim(CAST(m.matches_source_id AS VARCHAR)) AS matches_source_id
    FROM seeds.account_matches m
),
-- every candidate pair (record r -> record t of a better-ranked source) with the rule that
-- matched it
pairs AS (
    SELECT r.workspace_id, r.id, t.id AS target_id, t.source_rank AS target_rank, t.source_id AS target_source_id,
           1 AS tier, 'manual' AS method
    FROM records r
    JOIN manual m ON m.source = r.source AND m.source_id = r.source_id
    JOIN records t ON t.workspace_id = r.workspace_id AND t.source = m.matches_source AND t.source_id = m.matches_source_id
    WHERE (t.source_rank < r.source_rank OR (t.source_rank = r.source_rank AND t.source < r.source))
    UNION ALL
    -- a manual row may name the pair either way round
    SELECT r.workspace_id, r.id, t.id, t.source_rank, t.source_id, 1, 'manual'
    FROM records r
    JOIN manual m ON m.matches_source = r.source AND m.matches_source_id = r.source_id
    JOIN records t ON t.workspace_id = r.workspace_id AND t.source = m.source AND t.source_id = m.source_id
    WHERE (t.source_rank < r.source_rank OR (t.source_rank = r.source_rank AND t.source < r.source))
    UNION ALL
    SELECT r.workspace_id, r.id, t.id, t.source_rank, t.source_id, 2, 'exact_domain'
    FROM records r
    JOIN records t ON t.workspace_id = r.workspace_id AND t.domain = r.domain AND t.source <> r.source
    WHERE (t.source_rank < r.source_rank OR (t.source_rank = r.source_rank AND t.source < r.source))
    UNION ALL
    -- fuzzy names: two different known domains are two companies, however alike the names, so
    -- one side of a pair must lack a domain. Two branches (r without a domain; r with one and t
    -- without) keep that condition on one side each, where it filters before the join rather
    -- than after it, and the join carries only the narrow name keys.
    SELECT r.workspace_id, r.id, t.id, t.source_rank, t.source_id, 3, 'fuzzy_name'
    FROM name_keys r
    JOIN name_keys t
        ON t.workspace_id = r.workspace_id AND t.block = r.block AND t.source <> r.source
    WHERE (t.source_rank < r.source_rank OR (t.source_rank = r.source_rank AND t.source < r.source))
      AND r.domain IS NULL
      AND jaro_winkler(r.name_key, t.name_key) >= 0.90
    UNION ALL
    SELECT r.workspace_id, r.id, t.id, t.source_rank, t.source_id, 3, 'fuzzy_name'
    FROM name_keys r
    JOIN name_keys t
        ON t.workspace_id = r.workspace_id AND t.block = r.block AND t.source <> r.source
    WHERE (t.source_rank < r.source_rank OR (t.source_rank = r.source_rank AND t.source < r.source))
      AND r.domain IS NOT NULL AND t.domain IS NULL
      AND jaro_winkler(r.name_key, t.name_key) >= 0.90
),
-- a record's parent: the pair found by the strongest rule, then the best-ranked source, then
-- the lowest source id
ranked AS (
    SELECT p.*, row_number() OVER (
        PARTITION BY p.workspace_id, p.id
        ORDER BY p.tier, p.target_rank, p.target_source_id
    ) AS n
    FROM pairs p
),
parent AS (
    SELECT workspace_id, id, target_id, method FROM ranked WHERE n = 1
)
SELECT
    r.workspace_id,
    r.id,
    r.source,
    r.source_id,
    map([arrow_cast(r.source, 'Utf8')], [arrow_cast(r.source_id, 'Utf8')]) AS external_ids,
    r.source_data,
    r.created_at,
    r.updated_at,
    r.name,
    r.domain,
    r.industry,
    r.employee_count,
    r.annual_revenue,
    r.owner_id,
    r.name_key,
    r.source_rank,
    -- the winner: up to three hops (one per source ranked above the record's)
    coalesce(p3.target_id, p2.target_id, p1.target_id, r.id) AS merged_id,
    coalesce(p1.method, 'none') AS match_method
FROM records r
LEFT JOIN parent p1 ON p1.workspace_id = r.workspace_id AND p1.id = r.id
LEFT JOIN parent p2 ON p2.workspace_id = r.workspace_id AND p2.id = p1.target_id
LEFT JOIN parent p3 ON p3.workspace_id = r.workspace_id AND p3.id = p2.target_id
