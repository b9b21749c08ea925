-- staging.conversations: recorded calls and meetings (raw.gong_calls), linked to contacts,
-- accounts and deals. Participant emails are every address in `participants` (JSON text).
-- An address is internal when its domain is in seeds.internal_domains or it is a CRM user's
-- email (staging.users).
-- Internal conversations (`is_internal`) are left unlinked (link_method 'internal'):
--   internal_participants: there are participant emails and every one is internal;
--   title:<word>: no external participant and the title reads like an internal meeting
--   (standup, 1:1, all-hands, sync, retro, planning).
-- Linking of the others (tiers strongest first; link_method names the deepest link's tier):
--   contact: an external participant's email equals a staging.contacts email (email, 0.9);
--   account: the call's CRM account id (crm_id, 1.0), else the contact's account (email, 0.9),
--            else an external participant's email domain when exactly one account has that
--            domain (email_domain, 0.7); merged ids (staging.account_sources.merged_id);
--   deal:    the call's CRM deal id (crm_association, 1.0), else the single deal at the account
--            open when the call started (single_open_deal, 0.8 x the account's confidence).
WITH calls AS (
    SELECT
        g.workspace_id,
        'gong' AS source,
        CAST(g.id AS VARCHAR) AS source_id,
        g.source_data,
        CAST(g.started AS TIMESTAMP) AS started_at,
        coalesce(CAST(g.updated AS TIMESTAMP), CAST(g.started AS TIMESTAMP)) AS updated_at,
        CAST(CAST(g.duration AS DOUBLE) AS BIGINT) AS duration_seconds,
        CAST(g.title AS VARCHAR) AS title,
        CAST(g.participants AS VARCHAR) AS participants,
        CAST(g.transcript AS VARCHAR) AS transcript,
        nullif(lower(trim(CAST(g.crm_source AS VARCHAR))), '') AS crm_source,
        nullif(trim(CAST(g.crm_deal_id AS VARCHAR)), '') AS crm_deal_id,
        nullif(trim(CAST(g.crm_account_id AS VARCHAR)), '') AS crm_account_id
    FROM raw.gong_calls g
),
tokens AS (
    SELECT workspace_id, source_id, token
    FROM (
        SELECT
            c.workspace_id,
            c.source_id,
            unnest(string_to_array(
                lower(regexp_replace(coalesce(c.participants, ''), '[^A-Za-z0-9._%+@-]+', ' ', 'g')),
                ' ')) AS token
        FROM calls c
    ) t
),
internal_domains AS (
    SELECT DISTINCT lower(trim(CAST(domain AS VARCHAR))) AS domain FROM seeds.internal_domains
),
user_emails AS (
    SELECT DISTINCT workspace_id, email FROM staging.users WHERE email IS NOT NULL
),
emails AS (
    SELECT DISTINCT
        t.workspace_id,
        t.source_id,
        t.token AS email,
        normalize_domain(t.token) AS domain,
        (d.domain IS NOT NULL OR u.email IS NOT NULL) AS internal
    FROM tokens t
    LEFT JOIN internal_domains d ON d.domain = normalize_domain(t.token)
    LEFT JOIN user_emails u ON u.workspace_id = t.workspace_id AND u.email = t.token
    WHERE t.token LIKE '%_@_%._%'
),
per_call AS (
    SELECT
        workspace_id,
        source_id,
        count(*) AS emails,
        sum(CASE WHEN internal THEN 0 ELSE 1 END) AS external
    FROM emails
    GROUP BY workspace_id, source_id
),
flagged AS (
    SELECT
        c.*,
        CASE
            WHEN p.emails > 0 AND p.external = 0 THEN 'internal_participants'
            WHEN coalesce(p.external, 0) = 0
                AND regexp_like(c.title, '(?i)\b(standup|stand-up|1:1|one-on-one|all-hands|all hands|sync|retro|retrospective|planning)\b')
                THEN 'title:' || lower(regexp_match(c.title, '(?i)\b(standup|stand-up|1:1|one-on-one|all-hands|all hands|sync|retro|retrospective|planning)\b')[1])
        END AS internal_reason
    FROM calls c
    LEFT JOIN per_call p ON p.workspace_id = c.workspace_id AND p.source_id = c.source_id
),
contact_hits AS (
    SELECT
        e.workspace_id,
        e.source_id,
        k.id AS contact_id,
        k.account_id,
        row_number() OVER (PARTITION BY e.workspace_id, e.source_id ORDER BY e.email, k.id) AS n
    FROM emails e
    JOIN staging.contacts k ON k.workspace_id = e.workspace_id AND k.email = e.email
    WHERE NOT e.internal
),
domain_accounts AS (
    SELECT workspace_id, domain, min(id) AS account_id
    FROM staging.accounts
    WHERE domain IS NOT NULL
    GROUP BY workspace_id, domain
    HAVING count(*) = 1
),
domain_hits AS (
    SELECT
        e.workspace_id,
        e.source_id,
        da.account_id,
        row_number() OVER (PARTITION BY e.workspace_id, e.source_id ORDER BY e.email) AS n
    FROM emails e
    JOIN domain_accounts da ON da.workspace_id = e.workspace_id AND da.domain = e.domain
    WHERE NOT e.internal
),
linked AS (
    SELECT
        f.*,
        ch.contact_id,
        CASE
            WHEN f.crm_deal_id IS NOT NULL AND f.crm_source IS NOT NULL
                THEN uuid5(f.workspace_id, f.crm_source, f.crm_deal_id)
        END AS crm_deal,
        coalesce(a.merged_id, uuid5(f.workspace_id, f.crm_source, f.crm_account_id)) AS crm_account,
        ch.account_id AS contact_account,
        dh.account_id AS domain_account
    FROM flagged f
    LEFT JOIN contact_hits ch ON ch.workspace_id = f.workspace_id AND ch.source_id = f.source_id AND ch.n = 1
    LEFT JOIN domain_hits dh ON dh.workspace_id = f.workspace_id AND dh.source_id = f.source_id AND dh.n = 1
    LEFT JOIN staging.account_sources a
        ON a.workspace_id = f.workspace_id
        AND a.id = uuid5(f.workspace_id, f.crm_source, f.crm_account_id)
),
accounted AS (
    SELECT
        l.*,
        CASE
            WHEN l.internal_reason IS NOT NULL THEN NULL
            WHEN l.crm_account IS NOT NULL THEN l.crm_account
            WHEN l.contact_account IS NOT NULL THEN l.contact_account
            ELSE l.domain_account
        END AS account_id,
        CASE
            WHEN l.internal_reason IS NOT NULL THEN NULL
            WHEN l.crm_account IS NOT NULL THEN 'crm_id'
            WHEN l.contact_account IS NOT NULL THEN 'email'
            WHEN l.domain_account IS NOT NULL THEN 'email_domain'
        END AS account_method
    FROM linked l
),
open_deals AS (
    SELECT
        a.workspace_id,
        a.source_id,
        min(d.id) AS deal_id,
        count(d.id) AS deals
    FROM accounted a
    JOIN staging.deals d
        ON d.workspace_id = a.workspace_id
        AND d.account_id = a.account_id
        AND d.created_at <= a.started_at
        AND (d.closed_at IS NULL OR d.closed_at >= a.started_at)
    WHERE a.internal_reason IS NULL AND a.crm_deal IS NULL AND a.account_id IS NOT NULL
    GROUP BY a.workspace_id, a.source_id
)
SELECT
    a.workspace_id,
    uuid5(a.workspace_id, a.source, a.source_id) AS id,
    a.source,
    a.source_id,
    map([arrow_cast(a.source, 'Utf8')], [arrow_cast(a.source_id, 'Utf8')]) AS external_ids,
    a.source_data,
    a.started_at AS created_at,
    a.updated_at,
    CASE
        WHEN a.internal_reason IS NOT NULL THEN NULL
        WHEN a.crm_deal IS NOT NULL THEN a.crm_deal
        WHEN od.deals = 1 THEN od.deal_id
    END AS deal_id,
    a.account_id,
    CASE WHEN a.internal_reason IS NULL THEN a.contact_id END AS contact_id,
    a.title,
    a.started_at,
    a.duration_seconds,
    a.participants,
    a.transcript,
    a.internal_reason IS NOT NULL AS is_internal,
    a.internal_reason,
    CASE
        WHEN a.internal_reason IS NOT NULL THEN 'internal'
        WHEN a.crm_deal IS NOT NULL THEN 'crm_association'
        WHEN od.deals = 1 THEN 'single_open_deal'
        WHEN a.account_method IS NOT NULL THEN a.account_method
        WHEN a.contact_id IS NOT NULL THEN 'email'
        ELSE 'none'
    END AS link_method,
    CASE
        WHEN a.internal_reason IS NOT NULL THEN NULL
        WHEN a.crm_deal IS NOT NULL THEN 1.0
        WHEN od.deals = 1 THEN 0.8 * CASE a.account_method WHEN 'crm_id' THEN 1.0 WHEN 'email' THEN 0.9 ELSE 0.7 END
        WHEN a.account_method = 'crm_id' THEN 1.0
        WHEN a.account_method = 'email' THEN 0.9
        WHEN a.account_method = 'email_domain' THEN 0.7
        WHEN a.contact_id IS NOT NULL THEN 0.9
    END AS link_confidence
FROM accounted a
LEFT JOIN open_deals od ON od.workspace_id = a.workspace_id AND od.source_id = a.source_id
