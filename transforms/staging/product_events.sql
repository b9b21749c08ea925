-- staging.product_events: product usage events, from the exports product analytics tools give:
--   raw.amplitude_events  Amplitude Export API files (NDJSON per hour: uuid, event_type,
--                         event_time, user_id, user_properties, event_properties, ...);
--   raw.mixpanel_events   Mixpanel raw event export (NDJSON: event, properties {time,
--                         distinct_id, $insert_id, ...}; time in epoch seconds, or
--                         milliseconds in newer exports);
--   raw.segment_tracks    Segment track calls (the S3 destination's JSON: messageId, type,
--                         event, userId, timestamp, properties, context; or the warehouse
--                         `tracks` table: id, event, user_id, timestamp, context_traits_email);
--   raw.product_events    any other event table, in the shape of the ingestion guide's
--                         warehouse query (event_id, user_id, email, account_id,
--                         account_domain, event_name, event_timestamp, properties).
-- Land them with `revlake import FILES --dataset raw.<table>` (or a Singer tap named so).
--   email:       the user's email: Amplitude user_properties.email, Mixpanel $email / email,
--                Segment context.traits.email, else a user id that is an email.
--   contact_id:  the staging.contacts row with that email (when exactly one has it).
--   account_id / link_method, the first that applies:
--                'account_id'     the event names a CRM account (raw.product_events
--                                 account_id, Segment context.groupId) that is one
--                                 staging.account_sources record's source id;
--                'account_domain' the event's account_domain is one account's domain;
--                'contact'        the contact's account;
--                'email_domain'   the email's domain is exactly one account's domain.
-- The id is stable across re-imports: Amplitude's uuid, Mixpanel's dedupe key (event,
-- distinct_id, time, $insert_id), Segment's messageId.
WITH unioned AS (
    SELECT
        a.workspace_id,
        'amplitude' AS source,
        coalesce(
            nullif(CAST(a.uuid AS VARCHAR), ''),
            concat_ws('|', CAST(a.amplitude_id AS VARCHAR), CAST(a.device_id AS VARCHAR),
                CAST(a.event_time AS VARCHAR), CAST(a.event_type AS VARCHAR), CAST(a.insert_id AS VARCHAR))
        ) AS source_id,
        a.source_data,
        CAST(a.event_time AS TIMESTAMP) AS occurred_at,
        coalesce(CAST(a.server_upload_time AS TIMESTAMP), CAST(a.event_time AS TIMESTAMP)) AS updated_at,
        CAST(a.event_type AS VARCHAR) AS event,
        coalesce(nullif(CAST(a.user_id AS VARCHAR), ''), CAST(a.device_id AS VARCHAR)) AS user_id,
        lower(trim(coalesce(
            json_get(CAST(a.user_properties AS VARCHAR), '/email'),
            CASE WHEN CAST(a.user_id AS VARCHAR) LIKE '%@%' THEN CAST(a.user_id AS VARCHAR) END
        ))) AS email,
        CAST(NULL AS VARCHAR) AS account_ref,
        CAST(NULL AS VARCHAR) AS account_domain,
        CAST(a.event_properties AS VARCHAR) AS properties
    FROM raw.amplitude_events a
    UNION ALL
    SELECT
        m.workspace_id,
        'mixpanel',
        concat_ws('|', CAST(m.event AS VARCHAR), json_get(CAST(m.properties AS VARCHAR), '/distinct_id'),
            json_get(CAST(m.properties AS VARCHAR), '/time'),
            json_get(CAST(m.properties AS VARCHAR), '/$insert_id')),
        m.source_data,
        m.occurred_at,
        CAST(m._synced_at AS TIMESTAMP),
        CAST(m.event AS VARCHAR),
        coalesce(json_get(CAST(m.properties AS VARCHAR), '/$user_id'),
            json_get(CAST(m.properties AS VARCHAR), '/distinct_id')),
        lower(trim(coalesce(
            json_get(CAST(m.properties AS VARCHAR), '/$email'),
            json_get(CAST(m.properties AS VARCHAR), '/email'),
            CASE WHEN json_get(CAST(m.properties AS VARCHAR), '/$user_id') LIKE '%@%'
                THEN json_get(CAST(m.properties AS VARCHAR), '/$user_id') END,
            CASE WHEN json_get(CAST(m.properties AS VARCHAR), '/distinct_id') LIKE '%@%'
                THEN json_get(CAST(m.properties AS VARCHAR), '/distinct_id') END
        ))),
        CAST(NULL AS VARCHAR),
        CAST(NULL AS VARCHAR),
        CAST(m.properties AS VARCHAR)
    FROM (
        SELECT e.*,
            CASE
                WHEN CAST(json_get(CAST(e.properties AS VARCHAR), '/time') AS DOUBLE) >= 100000000000
                THEN to_timestamp_millis(CAST(CAST(json_get(CAST(e.properties AS VARCHAR), '/time') AS DOUBLE) AS BIGINT))
                ELSE to_timestamp_seconds(CAST(CAST(json_get(CAST(e.properties AS VARCHAR), '/time') AS DOUBLE) AS BIGINT))
            END AS occurred_at
        FROM raw.mixpanel_events e
    ) m
    UNION ALL
    SELECT
        s.workspace_id,
        'segment',
        coalesce(nullif(CAST(s.message_id AS VARCHAR), ''), CAST(s.id AS VARCHAR)),
        s.source_data,
        CAST(s."timestamp" AS TIMESTAMP),
        coalesce(CAST(s.received_at AS TIMESTAMP), CAST(s."timestamp" AS TIMESTAMP)),
        CAST(s.event AS VARCHAR),
        coalesce(nullif(CAST(s.user_id AS VARCHAR), ''), CAST(s.anonymous_id AS VARCHAR)),
        lower(trim(coalesce(
            nullif(CAST(s.context_traits_email AS VARCHAR), ''),
            json_get(CAST(s.context AS VARCHAR), '/traits/email'),
            json_get(CAST(s.properties AS VARCHAR), '/email'),
            CASE WHEN CAST(s.user_id AS VARCHAR) LIKE '%@%' THEN CAST(s.user_id AS VARCHAR) END
        ))),
        json_get(CAST(s.context AS VARCHAR), '/groupId'),
        CAST(NULL AS VARCHAR),
        CAST(s.properties AS VARCHAR)
    FROM raw.segment_tracks s
    WHERE s.type IS NULL OR lower(CAST(s.type AS VARCHAR)) = 'track'
    UNION ALL
    SELECT
        p.workspace_id,
        'file',
        coalesce(
            nullif(CAST(p.event_id AS VARCHAR), ''),
            concat_ws('|', CAST(p.user_id AS VARCHAR), CAST(p.email AS VARCHAR),
                CAST(p.event_name AS VARCHAR), CAST(p.event_timestamp AS VARCHAR))
        ),
        p.source_data,
        CAST(p.event_timestamp AS TIMESTAMP),
        coalesce(CAST(p._synced_at AS TIMESTAMP), CAST(p.event_timestamp AS TIMESTAMP)),
        CAST(p.event_name AS VARCHAR),
        nullif(CAST(p.user_id AS VARCHAR), ''),
        lower(trim(coalesce(
            nullif(CAST(p.email AS VARCHAR), ''),
            CASE WHEN CAST(p.user_id AS VARCHAR) LIKE '%@%' THEN CAST(p.user_id AS VARCHAR) END
        ))),
        nullif(trim(CAST(p.account_id AS VARCHAR)), ''),
        normalize_domain(nullif(trim(CAST(p.account_domain AS VARCHAR)), '')),
        CAST(p.properties AS VARCHAR)
    FROM raw.product_events p
),
ref_accounts AS (
    SELECT workspace_id, source_id, min(merged_id) AS account_id
    FROM staging.account_sources
    WHERE merged_id IS NOT NULL
    GROUP BY workspace_id, source_id
    HAVING count(DISTINCT merged_id) = 1
),
email_contacts AS (
    SELECT workspace_id, lower(email) AS email, min(id) AS contact_id, min(account_id) AS account_id
    FROM staging.contacts
    WHERE email IS NOT NULL
    GROUP BY workspace_id, lower(email)
    HAVING count(*) = 1
),
domain_accounts AS (
    SELECT workspace_id, domain, min(id) AS account_id
    FROM staging.accounts
    WHERE domain IS NOT NULL
    GROUP BY workspace_id, domain
    HAVING count(*) = 1
)
SELECT
    u.workspace_id,
    uuid5(u.workspace_id, u.source, u.source_id) AS id,
    u.source,
    u.source_id,
    map([arrow_cast(u.source, 'Utf8')], [arrow_cast(u.source_id, 'Utf8')]) AS external_ids,
    u.source_data,
    u.occurred_at AS created_at,
    coalesce(u.updated_at, u.occurred_at) AS updated_at,
    coalesce(ra.account_id, ad.account_id, ec.account_id, ed.account_id) AS account_id,
    ec.contact_id,
    u.user_id,
    nullif(u.email, '') AS email,
    u.event,
    u.occurred_at,
    u.properties,
    CASE
        WHEN ra.account_id IS NOT NULL THEN 'account_id'
        WHEN ad.account_id IS NOT NULL THEN 'account_domain'
        WHEN ec.account_id IS NOT NULL THEN 'contact'
        WHEN ed.account_id IS NOT NULL THEN 'email_domain'
    END AS link_method
FROM unioned u
LEFT JOIN ref_accounts ra
    ON ra.workspace_id = u.workspace_id AND ra.source_id = u.account_ref
LEFT JOIN domain_accounts ad
    ON ad.workspace_id = u.workspace_id AND ad.domain = u.account_domain
LEFT JOIN email_contacts ec
    ON ec.workspace_id = u.workspace_id AND ec.email = u.email
LEFT JOIN domain_accounts ed
    ON ed.workspace_id = u.workspace_id AND ed.domain = normalize_domain(u.email)
