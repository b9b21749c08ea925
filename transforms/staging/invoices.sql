-- staging.invoices: invoices from Stripe (raw.stripe_invoices) and Chargebee
-- (raw.chargebee_invoices), on the account of their customer (staging.customer_accounts),
-- amounts in the invoice's currency (major units: minor units / 100, except the zero-decimal
-- currencies). Deleted (draft) invoices are left out.
--   issued_at: Stripe's finalization time (status_transitions.finalized_at), else its
--              creation; Chargebee's invoice `date`.
--   paid_at:   Stripe's status_transitions.paid_at; Chargebee's paid_at.
--   status:    lower case, as the system says it (Stripe: draft, open, paid, uncollectible,
--              void; Chargebee: paid, posted, payment_due, not_paid, voided, pending).
WITH unioned AS (
    SELECT
        i.workspace_id,
        'stripe' AS source,
        CAST(i.id AS VARCHAR) AS source_id,
        i.source_data,
        CAST(i.created AS TIMESTAMP) AS created_at,
        CAST(i.customer AS VARCHAR) AS customer_id,
        nullif(CAST(i.subscription AS VARCHAR), '') AS subscription_source_id,
        lower(CAST(i.status AS VARCHAR)) AS status,
        CAST(i.amount_due AS DOUBLE) AS amount_due,
        CAST(i.amount_paid AS DOUBLE) AS amount_paid,
        lower(CAST(i.currency AS VARCHAR)) AS currency,
        coalesce(
            to_timestamp_seconds(CAST(json_get(i.source_data, '/status_transitions/finalized_at') AS BIGINT)),
            CAST(i.created AS TIMESTAMP)
        ) AS issued_at,
        to_timestamp_seconds(CAST(json_get(i.source_data, '/status_transitions/paid_at') AS BIGINT)) AS paid_at,
        CAST(NULL AS TIMESTAMP) AS updated_at
    FROM raw.stripe_invoices i
    WHERE NOT coalesce(CAST(i._deleted AS BOOLEAN), false)
    UNION ALL
    SELECT
        c.workspace_id,
        'chargebee',
        CAST(c.id AS VARCHAR),
        c.source_data,
        CAST(c.date AS TIMESTAMP),
        CAST(c.customer_id AS VARCHAR),
        nullif(CAST(c.subscription_id AS VARCHAR), ''),
        lower(CAST(c.status AS VARCHAR)),
        CAST(c.amount_due AS DOUBLE),
        CAST(c.amount_paid AS DOUBLE),
        lower(CAST(c.currency_code AS VARCHAR)),
        CAST(c.date AS TIMESTAMP),
        CAST(c.paid_at AS TIMESTAMP),
        CAST(c.updated_at AS TIMESTAMP)
    FROM raw.chargebee_invoices c
    WHERE NOT coalesce(CAST(c._deleted AS BOOLEAN), false)
),
scaled AS (
    SELECT u.*, minor_unit_scale(u.currency) AS minor
    FROM unioned u
)
SELECT
    u.workspace_id,
    uuid5(u.workspace_id, u.source, u.source_id) AS id,
    u.source,
    u.source_id,
    map([arrow_cast(u.source, 'Utf8')], [arrow_cast(u.source_id, 'Utf8')]) AS external_ids,
    u.source_data,
    u.created_at,
    coalesce(u.updated_at, u.paid_at, u.issued_at, u.created_at) AS updated_at,
    ca.account_id,
    CASE WHEN u.subscription_source_id IS NOT NULL
        THEN uuid5(u.workspace_id, u.source, u.subscription_source_id) END AS subscription_id,
    u.status,
    u.amount_due / u.minor AS amount_due,
    u.amount_paid / u.minor AS amount_paid,
    upper(u.currency) AS currency,
    u.issued_at,
    u.paid_at
FROM scaled u
LEFT JOIN staging.customer_accounts ca
    ON ca.workspace_id = u.workspace_id
    AND ca.id = uuid5(u.workspace_id, u.source, u.customer_id)
