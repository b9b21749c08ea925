-- staging.customer_accounts: the CRM account of every billing and support customer record
-- (Stripe customers, Chargebee customers, Zendesk organizations), so subscriptions, invoices
-- and tickets land on the same accounts as deals. The rules, strongest first (`match_method`):
--   crm_id:  a CRM account id the billing/support system carries: Stripe metadata
--            `salesforce_account_id` / `hubspot_company_id`, Zendesk `external_id` (a
--            Salesforce id, 15 or 18 characters starting 001, or a HubSpot company id);
--            resolved through staging.account_sources to the merged account;
--   domain:  the customer's email domain, or the organization's first domain name, when
--            exactly one staging.accounts row has it;
--   name:    the normalized company name (normalize_company) when exactly one account has it;
--   none:    no account (account_id null).
WITH customers AS (
    SELECT
        workspace_id,
        'stripe' AS source,
        CAST(id AS VARCHAR) AS source_id,
        CAST(email AS VARCHAR) AS email,
        normalize_domain(CAST(email AS VARCHAR)) AS domain,
        CAST(name AS VARCHAR) AS name,
        CASE
            WHEN json_get(CAST(metadata AS VARCHAR), '/salesforce_account_id') IS NOT NULL
                THEN uuid5(workspace_id, 'salesforce', json_get(CAST(metadata AS VARCHAR), '/salesforce_account_id'))
            WHEN json_get(CAST(metadata AS VARCHAR), '/hubspot_company_id') IS NOT NULL
                THEN uuid5(workspace_id, 'hubspot', json_get(CAST(metadata AS VARCHAR), '/hubspot_company_id'))
        END AS crm_record
    FROM raw.stripe_customers
    WHERE NOT coalesce(CAST(_deleted AS BOOLEAN), false)
    UNION ALL
    SELECT
        workspace_id,
        'chargebee',
        CAST(id AS VARCHAR),
        CAST(email AS VARCHAR),
        normalize_domain(CAST(email AS VARCHAR)),
        coalesce(
            nullif(trim(CAST(company AS VARCHAR)), ''),
            nullif(trim(concat_ws(' ', CAST(first_name AS VARCHAR), CAST(last_name AS VARCHAR))), '')
        ),
        CAST(NULL AS VARCHAR)
    FROM raw.chargebee_customers
    WHERE NOT coalesce(CAST(_deleted AS BOOLEAN), false)
    UNION ALL
    SELECT
        workspace_id,
        'zendesk',
        CAST(id AS VARCHAR),
        CAST(NULL AS VARCHAR),
        normalize_domain(json_get(CAST(domain_names AS VARCHAR), '/0')),
        CAST(name AS VARCHAR),
        CASE
            WHEN regexp_like(CAST(external_id AS VARCHAR), '^001[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$')
                THEN uuid5(workspace_id, 'salesforce', CAST(external_id AS VARCHAR))
            WHEN regexp_like(CAST(external_id AS VARCHAR), '^[0-9]+$')
                THEN uuid5(workspace_id, 'hubspot', CAST(external_id AS VARCHAR))
        END
    FROM raw.zendesk_organizations
    WHERE NOT coalesce(CAST(_deleted AS BOOLEAN), false)
),
domain_accounts AS (
    SELECT workspace_id, domain, min(id) AS account_id
    FROM staging.accounts
    WHERE domain IS NOT NULL
    GROUP BY workspace_id, domain
    HAVING count(*) = 1
),
name_accounts AS (
    SELECT workspace_id, normalize_company(name) AS company, min(id) AS account_id
    FROM staging.accounts
    WHERE normalize_company(name) IS NOT NULL
    GROUP BY workspace_id, normalize_company(name)
    HAVING count(*) = 1
)
SELECT
    c.workspace_id,
    uuid5(c.workspace_id, c.source, c.source_id) AS id,
    c.source,
    c.source_id,
    c.email,
    c.domain,
    c.name,
    coalesce(s.merged_id, d.account_id, n.account_id) AS account_id,
    CASE
        WHEN s.merged_id IS NOT NULL THEN 'crm_id'
        WHEN d.account_id IS NOT NULL THEN 'domain'
        WHEN n.account_id IS NOT NULL THEN 'name'
        ELSE 'none'
    END AS match_method
FROM customers c
LEFT JOIN staging.account_sources s
    ON s.workspace_id = c.workspace_id AND s.id = c.crm_record
LEFT JOIN domain_accounts d
    ON d.workspace_id = c.workspace_id AND d.domain = c.domain
LEFT JOIN name_accounts n
    ON n.workspace_id = c.workspace_id AND n.company = normalize_company(c.name)
