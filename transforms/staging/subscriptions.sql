-- staging.subscriptions: billing subscriptions from Stripe (raw.stripe_subscriptions) and
-- Chargebee (raw.chargebee_subscriptions), on the account of their customer
-- (staging.customer_accounts).
--   status: Stripe's vocabulary (trialing, active, past_due, unpaid, paused, canceled,
--           incomplete, incomplete_expired); Chargebee's in_trial -> trialing, cancelled ->
--           canceled, the rest (future, non_renewing, paused, transferred) as they are.
--   mrr_usd: monthly recurring revenue in USD (seeds.currency_rates): Stripe's from the items'
--           recurring prices (stripe_mrr: amount x quantity per month of the interval),
--           Chargebee's `mrr` field (minor units); 0 while trialing or once canceled,
--           incomplete or expired (no recurring revenue is being billed).
--   plan:   Stripe: the first item's price nickname, else its lookup key, else its product;
--           Chargebee: the first subscription item's item price id (Product Catalog 2.0), else
--           the plan id (1.0).
-- Amounts in minor units are divided by minor_unit_scale (100, or 1 for the zero-decimal
-- currencies).
WITH unioned AS (
    SELECT
        s.workspace_id,
        'stripe' AS source,
        CAST(s.id AS VARCHAR) AS source_id,
        s.source_data,
        CAST(s.created AS TIMESTAMP) AS created_at,
        CAST(s.customer AS VARCHAR) AS customer_id,
        lower(CAST(s.status AS VARCHAR)) AS status,
        coalesce(
            json_get(CAST(s.items AS VARCHAR), '/data/0/price/nickname'),
            json_get(CAST(s.items AS VARCHAR), '/data/0/price/lookup_key'),
            json_get(CAST(s.items AS VARCHAR), '/data/0/price/product'),
            json_get(CAST(s.items AS VARCHAR), '/data/0/plan/nickname'),
            json_get(CAST(s.items AS VARCHAR), '/data/0/plan/id')
        ) AS plan,
        stripe_mrr(CAST(s.items AS VARCHAR), CAST(s.currency AS VARCHAR)) AS mrr,
        upper(CAST(s.currency AS VARCHAR)) AS currency,
        coalesce(CAST(s.start_date AS TIMESTAMP), CAST(s.created AS TIMESTAMP)) AS started_at,
        coalesce(CAST(s.canceled_at AS TIMESTAMP), CAST(s.ended_at AS TIMESTAMP)) AS canceled_at,
        CAST(s.current_period_end AS TIMESTAMP) AS current_period_end,
        -- Stripe has no update time on subscriptions: the latest event of the record's life
        greatest(
            CAST(s.created AS TIMESTAMP),
            CAST(s.current_period_start AS TIMESTAMP),
            CAST(s.canceled_at AS TIMESTAMP),
            CAST(s.ended_at AS TIMESTAMP)
        ) AS updated_at
    FROM raw.stripe_subscriptions s
    UNION ALL
    SELECT
        c.workspace_id,
        'chargebee',
        CAST(c.id AS VARCHAR),
        c.source_data,
        CAST(c.created_at AS TIMESTAMP),
        CAST(c.customer_id AS VARCHAR),
        CASE lower(CAST(c.status AS VARCHAR))
            WHEN 'in_trial' THEN 'trialing'
            WHEN 'cancelled' THEN 'canceled'
            ELSE lower(CAST(c.status AS VARCHAR))
        END,
        coalesce(
            json_get(c.source_data, '/subscription_items/0/item_price_id'),
            json_get(c.source_data, '/plan_id')
        ),
        CAST(c.mrr AS DOUBLE) / minor_unit_scale(CAST(c.currency_code AS VARCHAR)),
        upper(CAST(c.currency_code AS VARCHAR)),
        coalesce(CAST(c.started_at AS TIMESTAMP), CAST(c.created_at AS TIMESTAMP)),
        CAST(c.cancelled_at AS TIMESTAMP),
        CAST(c.current_term_end AS TIMESTAMP),
        CAST(c.updated_at AS TIMESTAMP)
    FROM raw.chargebee_subscriptions c
    WHERE NOT coalesce(CAST(c._deleted AS BOOLEAN), false)
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
    ca.account_id,
    u.status,
    u.plan,
    CASE
        WHEN u.status IN ('trialing', 'canceled', 'incomplete', 'incomplete_expired') THEN 0.0
        ELSE u.mrr * fx.usd_rate
    END AS mrr_usd,
    u.currency,
    u.started_at,
    u.canceled_at,
    u.current_period_end
FROM unioned u
LEFT JOIN staging.customer_accounts ca
    ON ca.workspace_id = u.workspace_id
    AND ca.id = uuid5(u.workspace_id, u.source, u.customer_id)
LEFT JOIN seeds.currency_rates fx
    ON fx.currency = u.currency
