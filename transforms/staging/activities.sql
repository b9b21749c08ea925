-- staging.activities: emails, calls, meetings, tasks and notes from every CRM that has them:
--   Salesforce Task (raw.salesforce_task: calls, emails, tasks) and Event
--   (raw.salesforce_event: meetings, demos included). WhatId links the deal (opportunity ids
--   start with 006) and, through raw.salesforce_opportunity, the account (or the account
--   directly when WhatId is an account, 001); WhoId links the contact when it is a Contact
--   (003). Task/Event exports have no LastModifiedDate: updated_at is the CreatedDate.
--   HubSpot engagements (raw.hubspot_calls, _emails, _meetings, _notes, _tasks): hs_timestamp
--   is when it happened (a meeting's start when it has one); the CRM associations
--   (associated_deal_ids / _company_ids / _contact_ids, primary first) link deal, account and
--   contact; call and email directions come from hs_call_direction / hs_email_direction;
--   archived engagements are left out.
--   Pipedrive activities (raw.pipedrive_activities): type call / email / meeting (and lunch)
--   as such, any other type (task, deadline, custom) as task; occurred_at is when it was
--   marked done, else its due date and time (UTC), else its creation; deal_id, org_id and
--   person_id link deal, account and contact.
--
-- Linking (the tiers, strongest first; `link_method` names the tier that gave the deepest
-- link, `link_confidence` its confidence):
--   contact: the CRM's contact link (crm_id, 1.0), merged (staging.contact_sources.merged_id);
--   account: the CRM's deal's account or account link (crm_id, 1.0), else the contact's
--            account (contact, 0.9), else the contact email's domain when exactly one
--            staging.accounts row has it (email_domain, 0.7); merged
--            (staging.account_sources.merged_id);
--   deal:    the CRM's deal link (crm_association, 1.0), else the single deal at the account
--            open when the activity occurred (single_open_deal, 0.8 x the account's).
-- Internal activities are marked `is_internal` and left unlinked (link_method 'internal'):
-- every known participant email (the contact's) is internal (a domain of
-- seeds.internal_domains, or a staging.users email): internal_reason 'internal_participants';
-- or the subject reads like an internal meeting (standup, 1:1, all-hands, sync, retro,
-- planning) and no participant is known to be external: 'title:<word>'.
WITH tasks AS (
    SELECT
        t.workspace_id,
        CAST(t.id AS VARCHAR) AS source_id,
        t.source_data,
        CAST(t.created_date AS TIMESTAMP) AS created_at,
        CAST(t.what_id AS VARCHAR) AS what_id,
        CAST(t.who_id AS VARCHAR) AS who_id,
        CAST(t.owner_id AS VARCHAR) AS owner_id,
        CASE lower(coalesce(nullif(CAST(t.task_subtype AS VARCHAR), ''), CAST(t.type AS VARCHAR)))
            WHEN 'call' THEN 'call'
            WHEN 'email' THEN 'email'
            ELSE 'task'
        END AS type,
        -- ActivityDate (a date) at midnight UTC, or the creation when there is none
        coalesce(
            CAST(CAST(t.activity_date AS DATE) AS TIMESTAMP),
            CAST(t.created_date AS TIMESTAMP)
        ) AS occurred_at,
        'outbound' AS direction,
        CAST(t.subject AS VARCHAR) AS subject,
        CAST(t.status AS VARCHAR) AS outcome
    FROM raw.salesforce_task t
),
events AS (
    SELECT
        e.workspace_id,
        CAST(e.id AS VARCHAR) AS source_id,
        e.source_data,
        CAST(e.created_date AS TIMESTAMP) AS created_at,
        CAST(e.what_id AS VARCHAR) AS what_id,
        CAST(e.who_id AS VARCHAR) AS who_id,
        CAST(e.owner_id AS VARCHAR) AS owner_id,
        'meeting' AS type,
        coalesce(
            CAST(e.start_date_time AS TIMESTAMP),
            CAST(CAST(e.activity_date AS DATE) AS TIMESTAMP)
        ) AS occurred_at,
        CAST(NULL AS VARCHAR) AS direction,
        CAST(e.subject AS VARCHAR) AS subject,
        CAST(NULL AS VARCHAR) AS outcome
    FROM raw.salesforce_event e
),
sf_unioned AS (
    SELECT * FROM tasks
    UNION ALL
    SELECT * FROM events
),
-- Every source's rows in one shape: the CRM's own ids of the linked deal, account, contact and
-- owner (source ids, turned into staging ids below).
-- (every join here keeps the wide activity rows, source_data and all, on the probe side:
-- DataFusion builds its hash table from the left input, so the small table goes first and
-- the activities stream through a RIGHT JOIN instead of being held in memory)
sf AS (
    SELECT
        u.workspace_id,
        'salesforce' AS source,
        u.source_id,
        u.source_data,
        u.created_at,
        u.created_at AS updated_at,
        CASE WHEN u.what_id LIKE '006%' THEN u.what_id END AS deal_source_id,
        coalesce(
            nullif(CAST(o.account_id AS VARCHAR), ''),
            CASE WHEN u.what_id LIKE '001%' THEN u.what_id END
        ) AS account_source_id,
        CASE WHEN u.who_id LIKE '003%' THEN u.who_id END AS contact_source_id,
        nullif(u.owner_id, '') AS owner_source_id,
        u.type,
        u.occurred_at,
        u.direction,
        u.subject,
        u.outcome
    FROM raw.salesforce_opportunity o
    RIGHT JOIN sf_unioned u
        ON o.workspace_id = u.workspace_id
        AND u.what_id LIKE '006%'
        AND CAST(o.id AS VARCHAR) = u.what_id
),
hs_calls AS (
    SELECT
        workspace_id,
        coalesce(nullif(CAST(hs_object_id AS VARCHAR), ''), CAST(id AS VARCHAR)) AS source_id,
        source_data,
        coalesce(CAST(created_at AS TIMESTAMP), CAST(hs_createdate AS TIMESTAMP)) AS created_at,
        coalesce(CAST(updated_at AS TIMESTAMP), CAST(hs_lastmodifieddate AS TIMESTAMP)) AS updated_at,
        CAST(hs_timestamp AS TIMESTAMP) AS at,
        CAST(hubspot_owner_id AS VARCHAR) AS owner,
        CAST(associated_deal_ids AS VARCHAR) AS deal_ids,
        CAST(associated_company_ids AS VARCHAR) AS company_ids,
        CAST(associated_contact_ids AS VARCHAR) AS contact_ids,
        coalesce(CAST(archived AS BOOLEAN), false) OR coalesce(CAST(_deleted AS BOOLEAN), false) AS gone,
        'call' AS type,
        CAST(hs_timestamp AS TIMESTAMP) AS started,
        CASE upper(CAST(hs_call_direction AS VARCHAR))
            WHEN 'INBOUND' THEN 'inbound'
            WHEN 'OUTBOUND' THEN 'outbound'
        END AS direction,
        CAST(hs_call_title AS VARCHAR) AS subject,
        lower(CAST(hs_call_status AS VARCHAR)) AS outcome
    FROM raw.hubspot_calls
),
hs_emails AS (
    SELECT
        workspace_id,
        coalesce(nullif(CAST(hs_object_id AS VARCHAR), ''), CAST(id AS VARCHAR)) AS source_id,
        source_data,
        coalesce(CAST(created_at AS TIMESTAMP), CAST(hs_createdate AS TIMESTAMP)) AS created_at,
        coalesce(CAST(updated_at AS TIMESTAMP), CAST(hs_lastmodifieddate AS TIMESTAMP)) AS updated_at,
        CAST(hs_timestamp AS TIMESTAMP) AS at,
        CAST(hubspot_owner_id AS VARCHAR) AS owner,
        CAST(associated_deal_ids AS VARCHAR) AS deal_ids,
        CAST(associated_company_ids AS VARCHAR) AS company_ids,
        CAST(associated_contact_ids AS VARCHAR) AS contact_ids,
        coalesce(CAST(archived AS BOOLEAN), false) OR coalesce(CAST(_deleted AS BOOLEAN), false) AS gone,
        'email' AS type,
        CAST(hs_timestamp AS TIMESTAMP) AS started,
        -- EMAIL is a logged outgoing email, FORWARDED_EMAIL too; INCOMING_EMAIL a reply
        CASE upper(CAST(hs_email_direction AS VARCHAR))
            WHEN 'INCOMING_EMAIL' THEN 'inbound'
            WHEN 'EMAIL' THEN 'outbound'
            WHEN 'FORWARDED_EMAIL' THEN 'outbound'
        END AS direction,
        CAST(hs_email_subject AS VARCHAR) AS subject,
        lower(CAST(hs_email_status AS VARCHAR)) AS outcome
    FROM raw.hubspot_emails
),
hs_meetings AS (
    SELECT
        workspace_id,
        coalesce(nullif(CAST(hs_object_id AS VARCHAR), ''), CAST(id AS VARCHAR)) AS source_id,
        source_data,
        coalesce(CAST(created_at AS TIMESTAMP), CAST(hs_createdate AS TIMESTAMP)) AS created_at,
        coalesce(CAST(updated_at AS TIMESTAMP), CAST(hs_lastmodifieddate AS TIMESTAMP)) AS updated_at,
        CAST(hs_timestamp AS TIMESTAMP) AS at,
        CAST(hubspot_owner_id AS VARCHAR) AS owner,
        CAST(associated_deal_ids AS VARCHAR) AS deal_ids,
        CAST(associated_company_ids AS VARCHAR) AS company_ids,
        CAST(associated_contact_ids AS VARCHAR) AS contact_ids,
        coalesce(CAST(archived AS BOOLEAN), false) OR coalesce(CAST(_deleted AS BOOLEAN), false) AS gone,
        'meeting' AS type,
        CAST(hs_meeting_start_time AS TIMESTAMP) AS started,
        CAST(NULL AS VARCHAR) AS direction,
        CAST(hs_meeting_title AS VARCHAR) AS subject,
        lower(CAST(hs_meeting_outcome AS VARCHAR)) AS outcome
    FROM raw.hubspot_meetings
),
hs_notes AS (
    SELECT
        workspace_id,
        coalesce(nullif(CAST(hs_object_id AS VARCHAR), ''), CAST(id AS VARCHAR)) AS source_id,
        source_data,
        coalesce(CAST(created_at AS TIMESTAMP), CAST(hs_createdate AS TIMESTAMP)) AS created_at,
        coalesce(CAST(updated_at AS TIMESTAMP), CAST(hs_lastmodifieddate AS TIMESTAMP)) AS updated_at,
        CAST(hs_timestamp AS TIMESTAMP) AS at,
        CAST(hubspot_owner_id AS VARCHAR) AS owner,
        CAST(associated_deal_ids AS VARCHAR) AS deal_ids,
        CAST(associated_company_ids AS VARCHAR) AS company_ids,
        CAST(associated_contact_ids AS VARCHAR) AS contact_ids,
        coalesce(CAST(archived AS BOOLEAN), false) OR coalesce(CAST(_deleted AS BOOLEAN), false) AS gone,
        'note' AS type,
        CAST(hs_timestamp AS TIMESTAMP) AS started,
        CAST(NULL AS VARCHAR) AS direction,
        CAST(NULL AS VARCHAR) AS subject,
        CAST(NULL AS VARCHAR) AS outcome
    FROM raw.hubspot_notes
),
hs_tasks AS (
    SELECT
        workspace_id,
        coalesce(nullif(CAST(hs_object_id AS VARCHAR), ''), CAST(id AS VARCHAR)) AS source_id,
        source_data,
        coalesce(CAST(created_at AS TIMESTAMP), CAST(hs_createdate AS TIMESTAMP)) AS created_at,
        coalesce(CAST(updated_at AS TIMESTAMP), CAST(hs_lastmodifieddate AS TIMESTAMP)) AS updated_at,
        CAST(hs_timestamp AS TIMESTAMP) AS at,
        CAST(hubspot_owner_id AS VARCHAR) AS owner,
        CAST(associated_deal_ids AS VARCHAR) AS deal_ids,
        CAST(associated_company_ids AS VARCHAR) AS company_ids,
        CAST(associated_contact_ids AS VARCHAR) AS contact_ids,
        coalesce(CAST(archived AS BOOLEAN), false) OR coalesce(CAST(_deleted AS BOOLEAN), false) AS gone,
        'task' AS type,
        CAST(hs_timestamp AS TIMESTAMP) AS started,
        CAST(NULL AS VARCHAR) AS direction,
        CAST(hs_task_subject AS VARCHAR) AS subject,
        lower(CAST(hs_task_status AS VARCHAR)) AS outcome
    FROM raw.hubspot_tasks
),
hs_unioned AS (
    SELECT * FROM hs_calls
    UNION ALL
    SELECT * FROM hs_emails
    UNION ALL
    SELECT * FROM hs_meetings
    UNION ALL
    SELECT * FROM hs_notes
    UNION ALL
    SELECT * FROM hs_tasks
),
hs AS (
    SELECT
        h.workspace_id,
        'hubspot' AS source,
        h.source_id,
        h.source_data,
        h.created_at,
        coalesce(h.updated_at, h.created_at) AS updated_at,
        nullif(split_part(h.deal_ids, ';', 1), '') AS deal_source_id,
        nullif(split_part(h.company_ids, ';', 1), '') AS account_source_id,
        nullif(split_part(h.contact_ids, ';', 1), '') AS contact_source_id,
        -- the key staging.users gives HubSpot owners
        'owner:' || nullif(h.owner, '') AS owner_source_id,
        h.type,
        coalesce(h.started, h.at, h.created_at) AS occurred_at,
        h.direction,
        h.subject,
        h.outcome
    FROM hs_unioned h
    WHERE NOT h.gone
),
pd AS (
    SELECT
        a.workspace_id,
        'pipedrive' AS source,
        CAST(a.id AS VARCHAR) AS source_id,
        a.source_data,
        CAST(a.add_time AS TIMESTAMP) AS created_at,
        coalesce(CAST(a.update_time AS TIMESTAMP), CAST(a.add_time AS TIMESTAMP)) AS updated_at,
        nullif(CAST(a.deal_id AS VARCHAR), '') AS deal_source_id,
        nullif(CAST(a.org_id AS VARCHAR), '') AS account_source_id,
        nullif(CAST(a.person_id AS VARCHAR), '') AS contact_source_id,
        -- v2 names the assignee owner_id, v1 user_id
        coalesce(nullif(CAST(a.owner_id AS VARCHAR), ''), nullif(CAST(a.user_id AS VARCHAR), '')) AS owner_source_id,
        CASE lower(CAST(a.type AS VARCHAR))
            WHEN 'call' THEN 'call'
            WHEN 'email' THEN 'email'
            WHEN 'meeting' THEN 'meeting'
            WHEN 'lunch' THEN 'meeting'
            ELSE 'task'
        END AS type,
        coalesce(
            CASE WHEN CAST(a.done AS BOOLEAN) THEN CAST(a.marked_as_done_time AS TIMESTAMP) END,
            -- due_time is HH:MM (v1) or HH:MM:SS (v2), in UTC
            CASE
                WHEN CAST(a.due_time AS VARCHAR) ~ '^[0-9]{2}:[0-9]{2}$'
                    THEN CAST(concat(CAST(a.due_date AS VARCHAR), 'T', CAST(a.due_time AS VARCHAR), ':00') AS TIMESTAMP)
                WHEN CAST(a.due_time AS VARCHAR) ~ '^[0-9]{2}:[0-9]{2}:[0-9]{2}$'
                    THEN CAST(concat(CAST(a.due_date AS VARCHAR), 'T', CAST(a.due_time AS VARCHAR)) AS TIMESTAMP)
            END,
            CAST(CAST(a.due_date AS DATE) AS TIMESTAMP),
            CAST(a.add_time AS TIMESTAMP)
        ) AS occurred_at,
        CAST(NULL AS VARCHAR) AS direction,
        CAST(a.subject AS VARCHAR) AS subject,
        CASE WHEN CAST(a.done AS BOOLEAN) THEN 'done' ELSE 'open' END AS outcome
    FROM raw.pipedrive_activities a
    WHERE NOT coalesce(CAST(a._deleted AS BOOLEAN), false)
      AND NOT coalesce(CAST(a.is_deleted AS BOOLEAN), false)
),
unioned AS (
    SELECT * FROM sf
    UNION ALL
    SELECT * FROM hs
    UNION ALL
    SELECT * FROM pd
),
internal_domains AS (
    SELECT DISTINCT lower(trim(CAST(domain AS VARCHAR))) AS domain FROM seeds.internal_domains
),
user_emails AS (
    SELECT DISTINCT workspace_id, email FROM staging.users WHERE email IS NOT NULL
),
base AS (
    SELECT
        u.*,
        uuid5(u.workspace_id, u.source, u.source_id) AS id,
        uuid5(u.workspace_id, u.source, u.deal_source_id) AS crm_deal_id,
        uuid5(u.workspace_id, u.source, u.account_source_id) AS crm_account_source_record,
        uuid5(u.workspace_id, u.source, u.contact_source_id) AS crm_contact_record
    FROM unioned u
),
with_contact AS (
    SELECT
        b.*,
        c.merged_id AS contact_id,
        c.email AS contact_email,
        c.account_id AS contact_account_id
    FROM staging.contact_sources c
    RIGHT JOIN base b
        ON c.workspace_id = b.workspace_id AND c.id = b.crm_contact_record
),
resolved AS (
    SELECT
        b.*,
        coalesce(a.merged_id, b.crm_account_source_record) AS crm_account_id
    FROM staging.account_sources a
    RIGHT JOIN with_contact b
        ON a.workspace_id = b.workspace_id AND a.id = b.crm_account_source_record
),
classified AS (
    SELECT
        r.*,
        r.contact_email IS NOT NULL AS has_participant,
        r.contact_email IS NOT NULL AND (
            r.internal_domain OR ue.email IS NOT NULL
        ) AS participants_internal,
        lower(regexp_match(r.subject, '(?i)\b(standup|stand-up|1:1|one-on-one|all-hands|all hands|sync|retro|retrospective|planning)\b')[1]) AS internal_word
    FROM user_emails ue
    RIGHT JOIN (
        SELECT r.*, d.domain IS NOT NULL AS internal_domain
        FROM internal_domains d
        RIGHT JOIN resolved r ON d.domain = normalize_domain(r.contact_email)
    ) r ON ue.workspace_id = r.workspace_id AND ue.email = r.contact_email
),
flagged AS (
    SELECT
        c.*,
        CASE
            WHEN c.participants_internal THEN 'internal_participants'
            WHEN c.internal_word IS NOT NULL AND NOT c.has_participant THEN 'title:' || c.internal_word
        END AS internal_reason
    FROM classified c
),
domain_accounts AS (
    SELECT workspace_id, domain, min(id) AS account_id
    FROM staging.accounts
    WHERE domain IS NOT NULL
    GROUP BY workspace_id, domain
    HAVING count(*) = 1
),
accounted AS (
    SELECT
        f.*,
        CASE
            WHEN f.internal_reason IS NOT NULL THEN NULL
            WHEN f.crm_account_id IS NOT NULL THEN f.crm_account_id
            WHEN f.contact_account_id IS NOT NULL THEN f.contact_account_id
            ELSE da.account_id
        END AS account_id,
        CASE
            WHEN f.internal_reason IS NOT NULL THEN NULL
            WHEN f.crm_account_id IS NOT NULL THEN 'crm_id'
            WHEN f.contact_account_id IS NOT NULL THEN 'contact'
            WHEN da.account_id IS NOT NULL THEN 'email_domain'
        END AS account_method
    FROM domain_accounts da
    RIGHT JOIN flagged f
        ON da.workspace_id = f.workspace_id AND da.domain = normalize_domain(f.contact_email)
),
open_deals AS (
    SELECT
        a.workspace_id,
        a.id,
        min(d.id) AS deal_id,
        count(d.id) AS deals
    FROM staging.deals d
    JOIN accounted a
        ON d.workspace_id = a.workspace_id
        AND d.account_id = a.account_id
        AND d.created_at <= a.occurred_at
        AND (d.closed_at IS NULL OR d.closed_at >= a.occurred_at)
    WHERE a.internal_reason IS NULL AND a.crm_deal_id IS NULL AND a.account_id IS NOT NULL
    GROUP BY a.workspace_id, a.id
)
SELECT
    a.workspace_id,
    a.id,
    a.source,
    a.source_id,
    map([arrow_cast(a.source, 'Utf8')], [arrow_cast(a.source_id, 'Utf8')]) AS external_ids,
    a.source_data,
    a.created_at,
    a.updated_at,
    CASE
        WHEN a.internal_reason IS NOT NULL THEN NULL
        WHEN a.crm_deal_id IS NOT NULL THEN a.crm_deal_id
        WHEN od.deals = 1 THEN od.deal_id
    END AS deal_id,
    a.account_id,
    CASE WHEN a.internal_reason IS NULL THEN a.contact_id END AS contact_id,
    a.type,
    a.occurred_at,
    a.direction,
    a.subject,
    a.outcome,
    uuid5(a.workspace_id, a.source, a.owner_source_id) AS owner_id,
    CASE
        WHEN a.internal_reason IS NOT NULL THEN 'internal'
        WHEN a.crm_deal_id IS NOT NULL THEN 'crm_association'
        WHEN od.deals = 1 THEN 'single_open_deal'
        WHEN a.account_method IS NOT NULL THEN a.account_method
        WHEN a.contact_id IS NOT NULL THEN 'crm_id'
        ELSE 'none'
    END AS link_method,
    CASE
        WHEN a.internal_reason IS NOT NULL THEN NULL
        WHEN a.crm_deal_id IS NOT NULL THEN 1.0
        WHEN od.deals = 1 THEN 0.8 * CASE a.account_method WHEN 'crm_id' THEN 1.0 WHEN 'contact' THEN 0.9 ELSE 0.7 END
        WHEN a.account_method = 'crm_id' THEN 1.0
        WHEN a.account_method = 'contact' THEN 0.9
        WHEN a.account_method = 'email_domain' THEN 0.7
        WHEN a.contact_id IS NOT NULL THEN 1.0
    END AS link_confidence,
    a.internal_reason IS NOT NULL AS is_internal,
    a.internal_reason
FROM open_deals od
RIGHT JOIN accounted a ON od.workspace_id = a.workspace_id AND od.id = a.id
