-- staging.quotas: rep quotas per period, from Salesforce Collaborative Forecasts
-- (raw.salesforce_forecasting_quota, with raw.salesforce_period for the period's end) and from a
-- quota sheet imported as raw.file_quotas (one row per rep and period).
--   owner_id:   the staging.users id of the quota's owner. Salesforce: QuotaOwnerId. Sheet: the
--               user named by owner_source + owner_source_id, else the user with owner_email,
--               else the one user with owner_name; when several users share the email or name
--               (a rep in two CRMs), the one who owns the most deals. Null when no user
--               matches: the row stays, and the not_null check names it.
--   period_end: Salesforce: the end of the quota's Period (PeriodId); without a synced
--               raw.salesforce_period row, the month starting at StartDate (Salesforce's
--               default forecast period; period_type says 'month (assumed)'). Sheet:
--               period_end, else the month, quarter or year of period_type. Both inclusive.
--   amount_usd: the amount in USD through seeds.currency_rates (no currency: USD, as a
--               single-currency Salesforce org has no CurrencyIsoCode).
-- Salesforce quantity quotas (IsQuantity, no QuotaAmount) are left out: they count units, not
-- revenue. An org with several forecast types has a quota row per type (forecast_type).
WITH salesforce AS (
    SELECT
        q.workspace_id,
        'salesforce' AS source,
        CAST(q.id AS VARCHAR) AS source_id,
        q.source_data,
        CAST(q.created_date AS TIMESTAMP) AS created_at,
        CAST(q.last_modified_date AS TIMESTAMP) AS updated_at,
        uuid5(q.workspace_id, 'salesforce', nullif(trim(CAST(q.quota_owner_id AS VARCHAR)), '')) AS owner_id,
        CAST(NULL AS VARCHAR) AS owner_email,
        CAST(q.start_date AS DATE) AS period_start,
        coalesce(
            CAST(p.end_date AS DATE),
            CAST(CAST(q.start_date AS DATE) + INTERVAL '1 month' - INTERVAL '1 day' AS DATE)
        ) AS period_end,
        CASE WHEN p.id IS NULL THEN 'month (assumed)' ELSE lower(CAST(p.type AS VARCHAR)) END AS period_type,
        upper(coalesce(nullif(trim(CAST(q.currency_iso_code AS VARCHAR)), ''), 'USD')) AS currency,
        CAST(q.quota_amount AS DOUBLE) AS amount,
        nullif(trim(CAST(q.forecasting_type_id AS VARCHAR)), '') AS forecast_type
    FROM raw.salesforce_forecasting_quota q
    LEFT JOIN raw.salesforce_period p
        ON p.workspace_id = q.workspace_id AND CAST(p.id AS VARCHAR) = CAST(q.period_id AS VARCHAR)
    WHERE q.quota_amount IS NOT NULL
        AND NOT coalesce(CAST(q.is_quantity AS BOOLEAN), false)
),
-- The users a sheet can name, with the deals each owns (the tie-break between a rep's users).
user_deals AS (
    SELECT u.workspace_id, u.id, u.source, u.source_id, u.email, lower(trim(u.name)) AS name,
        count(d.id) AS deals
    FROM staging.users u
    LEFT JOIN staging.deals d ON d.workspace_id = u.workspace_id AND d.owner_id = u.id
    GROUP BY u.workspace_id, u.id, u.source, u.source_id, u.email, lower(trim(u.name))
),
by_email AS (
    SELECT workspace_id, email, id
    FROM (
        SELECT workspace_id, email, id,
            row_number() OVER (PARTITION BY workspace_id, email ORDER BY deals DESC, id) AS n
        FROM user_deals
        WHERE email IS NOT NULL
    ) ranked
    WHERE n = 1
),
by_name AS (
    SELECT workspace_id, name, id
    FROM (
        SELECT workspace_id, name, id,
            row_number() OVER (PARTITION BY workspace_id, name ORDER BY deals DESC, id) AS n
        FROM user_deals
        WHERE name IS NOT NULL AND name <> ''
    ) ranked
    WHERE n = 1
),
sheet_rows AS (
    SELECT
        f.workspace_id,
        f.source_data,
        f._synced_at,
        nullif(trim(CAST(f.quota_id AS VARCHAR)), '') AS quota_id,
        lower(nullif(trim(CAST(f.owner_source AS VARCHAR)), '')) AS owner_source,
        nullif(trim(CAST(f.owner_source_id AS VARCHAR)), '') AS owner_source_id,
        lower(nullif(trim(CAST(f.owner_email AS VARCHAR)), '')) AS owner_email,
        lower(nullif(trim(CAST(f.owner_name AS VARCHAR)), '')) AS owner_name,
        CAST(f.period_start AS DATE) AS period_start,
        CAST(f.period_end AS DATE) AS period_end,
        lower(nullif(trim(CAST(f.period_type AS VARCHAR)), '')) AS period_type,
        upper(coalesce(nullif(trim(CAST(f.currency AS VARCHAR)), ''), 'USD')) AS currency,
        CAST(f.amount AS DOUBLE) AS amount
    FROM raw.file_quotas f
),
sheet AS (
    SELECT
        s.workspace_id,
        'file' AS source,
        coalesce(
            s.quota_id,
            concat_ws('|', coalesce(s.owner_source || ':' || s.owner_source_id, s.owner_email, s.owner_name),
                CAST(s.period_start AS VARCHAR), CAST(s.period_end AS VARCHAR), s.period_type)
        ) AS source_id,
        s.source_data,
        CAST(s._synced_at AS TIMESTAMP) AS created_at,
        CAST(s._synced_at AS TIMESTAMP) AS updated_at,
        coalesce(ui.id, ue.id, un.id) AS owner_id,
        s.owner_email,
        s.period_start,
        coalesce(
            s.period_end,
            CASE s.period_type
                WHEN 'month' THEN CAST(s.period_start + INTERVAL '1 month' - INTERVAL '1 day' AS DATE)
                WHEN 'quarter' THEN CAST(s.period_start + INTERVAL '3 months' - INTERVAL '1 day' AS DATE)
                WHEN 'year' THEN CAST(s.period_start + INTERVAL '12 months' - INTERVAL '1 day' AS DATE)
            END
        ) AS period_end,
        coalesce(s.period_type, 'custom') AS period_type,
        s.currency,
        s.amount,
        CAST(NULL AS VARCHAR) AS forecast_type
    FROM sheet_rows s
    LEFT JOIN user_deals ui
        ON ui.workspace_id = s.workspace_id AND ui.source = s.owner_source
        AND (ui.source_id = s.owner_source_id OR ui.source_id = 'owner:' || s.owner_source_id)
    LEFT JOIN by_email ue ON ue.workspace_id = s.workspace_id AND ue.email = s.owner_email
    LEFT JOIN by_name un ON un.workspace_id = s.workspace_id AND un.name = s.owner_name
),
unioned AS (
    SELECT * FROM salesforce
    UNION ALL
    SELECT * FROM sheet
)
SELECT
    u.workspace_id,
    uuid5(u.workspace_id, u.source, u.source_id) AS id,
    u.source,
    u.source_id,
    map([arrow_cast(u.source, 'Utf8')], [arrow_cast(u.source_id, 'Utf8')]) AS external_ids,
    u.source_data,
    u.created_at,
    coalesce(u.updated_at, u.created_at) AS updated_at,
    u.owner_id,
    u.owner_email,
    u.period_start,
    u.period_end,
    u.period_type,
    u.forecast_type,
    u.currency,
    u.amount,
    u.amount * fx.usd_rate AS amount_usd
FROM unioned u
LEFT JOIN seeds.currency_rates fx
    ON fx.currency = u.currency
