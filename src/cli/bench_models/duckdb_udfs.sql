-- revlake's SQL helpers (src/sql/udf/) as DuckDB macros.
-- Unicode White_Space, as Rust's str::trim strips it.
CREATE MACRO _rl_trim(s) AS regexp_replace(s, '^[\t\n\v\f\r\x{85}\pZ]+|[\t\n\v\f\r\x{85}\pZ]+$', '', 'g');
-- uuid5(a, b, ...): UUIDv5 of the parts joined by U+001F in revlake's namespace
-- 6f1c2a4e-8d3b-5e7f-9a0b-1c2d3e4f5a6b: sha1(namespace bytes || name), version 5, RFC 4122 variant.
CREATE MACRO _rl_uuid5_hex(h) AS substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-5' || substr(h, 14, 3) || '-' || substr('89ab89ab89ab89ab', strpos('0123456789abcdef', substr(h, 17, 1)), 1) || substr(h, 18, 3) || '-' || substr(h, 21, 12);
CREATE MACRO _rl_uuid5(name) AS _rl_uuid5_hex(sha1(unhex('6f1c2a4e8d3b5e7f9a0b1c2d3e4f5a6b') || encode(name)));
CREATE MACRO uuid5_1(a) AS _rl_uuid5(CAST(a AS VARCHAR));
CREATE MACRO uuid5_2(a, b) AS _rl_uuid5(CAST(a AS VARCHAR) || chr(31) || CAST(b AS VARCHAR));
CREATE MACRO uuid5_3(a, b, c) AS _rl_uuid5(CAST(a AS VARCHAR) || chr(31) || CAST(b AS VARCHAR) || chr(31) || CAST(c AS VARCHAR));
CREATE MACRO uuid5_4(a, b, c, d) AS _rl_uuid5(CAST(a AS VARCHAR) || chr(31) || CAST(b AS VARCHAR) || chr(31) || CAST(c AS VARCHAR) || chr(31) || CAST(d AS VARCHAR));
CREATE MACRO uuid5_5(a, b, c, d, e) AS _rl_uuid5(CAST(a AS VARCHAR) || chr(31) || CAST(b AS VARCHAR) || chr(31) || CAST(c AS VARCHAR) || chr(31) || CAST(d AS VARCHAR) || chr(31) || CAST(e AS VARCHAR));
-- normalize_domain(x): the authority after `scheme://`, up to / ? #; after the last @; a
-- trailing :digits port dropped (any other text after the last : refuses the input); trailing
-- dots trimmed; letters, digits, - _ . only; two or more non-empty labels, the last not all
-- digits; lower case; a leading www. dropped when two labels remain.
CREATE MACRO _rl_nd_hostport(s) AS regexp_extract(regexp_extract(CASE WHEN strpos(s, '://') > 0 THEN substr(s, strpos(s, '://') + 3) ELSE s END, '^[^/?#]*'), '[^@]*$');
CREATE MACRO _rl_nd_host(hp) AS CASE WHEN strpos(hp, ':') = 0 THEN hp WHEN regexp_matches(hp, ':[0-9]*$') THEN regexp_replace(hp, ':[0-9]*$', '') END;
CREATE MACRO _rl_nd_check(h) AS CASE WHEN regexp_matches(h, '^[\pL\pN_-]+(\.[\pL\pN_-]+)+$') AND NOT regexp_matches(h, '\.[0-9]+$') THEN CASE WHEN regexp_matches(h, '^www\.[^.]+\.') THEN substr(h, 5) ELSE h END END;
CREATE MACRO normalize_domain(x) AS _rl_nd_check(lower(rtrim(_rl_nd_host(_rl_nd_hostport(_rl_trim(CAST(x AS VARCHAR)))), '.')));
-- normalize_company(name): lower case; . ' ’ ` ´ join; & is the word `and`; any other run of
-- characters that are not letters, digits or combining marks separates words; a leading
-- `the ` and trailing legal forms dropped (never the first word); null when empty.
CREATE MACRO _rl_nc_words(s) AS trim(regexp_replace(replace(regexp_replace(lower(s), '[.''’`´]', '', 'g'), '&', ' and '), '[^\pL\pN\x{300}-\x{36F}\x{1AB0}-\x{1AFF}\x{1DC0}-\x{1DFF}\x{20D0}-\x{20FF}\x{FE20}-\x{FE2F}]+', ' ', 'g'));
CREATE MACRO _rl_nc_forms(s) AS regexp_replace(s, '( (inc|incorporated|corp|corporation|co|company|llc|llp|lp|ltd|limited|plc|gmbh|ag|kg|kgaa|se|sa|sas|sarl|srl|spa|bv|nv|oy|oyj|ab|as|a s|aps|pty|kk|ltda|and))+$', '');
CREATE MACRO normalize_company(name) AS nullif(_rl_nc_forms(regexp_replace(_rl_nc_words(CAST(name AS VARCHAR)), '^the ', '')), '');
-- jaro_winkler(a, b): strsim's, by characters: the Python UDF _jaro_winkler_py. DuckDB's
-- jaro_winkler_similarity compares bytes, scores two empty strings 0 and differs in the last
-- bit on some ASCII pairs (martha/marhta), which can flip a >= 0.90 threshold.
CREATE MACRO jaro_winkler(a, b) AS _jaro_winkler_py(a, b);
-- json_get(json, pointer): the value at a JSON Pointer as text; null for text that is not JSON.
CREATE MACRO json_get(j, p) AS CASE WHEN json_valid(j) THEN json_extract_string(j, p) END;
-- minor_unit_scale(currency): 1 for the zero-decimal currencies (ASCII case-insensitive), else 100.
CREATE MACRO minor_unit_scale(c) AS CASE WHEN c IS NULL THEN NULL WHEN strlen(_rl_trim(c)) = length(_rl_trim(c)) AND lower(_rl_trim(c)) IN ('bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf') THEN CAST(1.0 AS DOUBLE) ELSE CAST(100.0 AS DOUBLE) END;
-- business_days(a, b): weekdays from a (inclusive) to b (exclusive), numpy busday_count.
CREATE MACRO _rl_weekdays_before(d) AS CAST(floor((d - 4) / 7.0) AS BIGINT) * 5 + least(((d - 4) % 7 + 7) % 7, 5);
CREATE MACRO _rl_day(x) AS CAST(datediff('day', DATE '1970-01-01', CAST(x AS DATE)) AS BIGINT);
CREATE MACRO business_days(a, b) AS CASE WHEN _rl_day(a) <= _rl_day(b) THEN _rl_weekdays_before(_rl_day(b)) - _rl_weekdays_before(_rl_day(a)) ELSE _rl_weekdays_before(_rl_day(b) + 1) - _rl_weekdays_before(_rl_day(a) + 1) END;
