-- The canonical text of a JSON value for reconciliation checksums, computed
-- in PostgreSQL (docs/reconcile.md §3): one `path=leaf` entry per leaf, sorted
-- by code point (bytes, COLLATE "C"), joined by ','. Byte-identical to Rust's
-- `reconcile::canonical::canonical_json` and to the Snowflake-side JavaScript
-- function THAW_CANON_JSON:
--   paths     start at '$'; an object member adds '.' and the key as a JSON
--             string ("a", "\"", "\n", "\u001f"), an array element '[i]';
--   leaves    strings as JSON strings, true/false/null, '{}' and '[]' for
--             empty containers, numbers as their double in the float form
--             (shortest round-trip digits in scientific form: 1e0, 2.5e0,
--             1e-7, 1.2345678901234568e17; zero is '0': jsonb holds no -0).
--
-- Why a function: the former pure-SQL form (a recursive CTE per row over
-- jsonb_each/jsonb_array_elements) cost about 90 µs per row for a 5-leaf
-- document; this one walks the value in PL/pgSQL (part of every PostgreSQL,
-- Aurora included) at a fraction of that (docs/benchmarks.md §4). Like the
-- role block of V4 it is database-side code by exception: a pure function
-- of its argument, no table access.
--
-- How it walks: canonical_json_lines(path, node) returns the sorted entries
-- of `node` under `path`. Object members come from $.keyvalue() in jsonb's
-- storage order (shorter keys first), array elements by index; a nested
-- non-empty container recurses. The entries of different children never
-- interleave in byte order (a child's path is a prefix of all its entries and
-- of no other), so a level is sorted when its children are: the level sorts
-- its entries (one query) only when some member key is out of byte order or
-- the array has more than 10 elements ('[10]' sorts before '[2]').
--
-- Numbers: the jsonb numeric cast to float8 and printed in the shortest
-- round-trip digits, which needs extra_float_digits >= 1 (PostgreSQL's default
-- since 12; reconcile sets it), rewritten as d.ddd e N; for numbers of 1e14 and
-- above the digits are checked against the exact value, because PostgreSQL
-- breaks ties differently from Rust and JavaScript (see below).
-- A number no double holds (1e400) raises PostgreSQL's out-of-range error.
CREATE SCHEMA IF NOT EXISTS thaw_reconcile;

-- The float form of a double (docs/reconcile.md §3): the shortest round-trip
-- digits in scientific form ([-]d[.ddd]eN: 1e0, 2.5e0, 1e-7,
-- 1.2345678901234568e17), 'NaN', 'Infinity', '-Infinity', '0', '-0';
-- byte-identical to Rust's `reconcile::canonical::canonical_float`, ties
-- included (see below). Used for JSON numbers here and, for numbers of 1e14
-- and above, by FLOAT columns (`canonical::postgres_float`, whose plain SQL
-- covers the rest).
CREATE OR REPLACE FUNCTION thaw_reconcile.canonical_float(value float8) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $function$
DECLARE
    number float8;
    shortest text;
    digits text;
    exponent int;
    exact numeric;
    unit numeric;
    unit_exponent int;
    lower_value numeric;
    upper_value numeric;
    lower text;
    upper text;
    lower_ok boolean;
    upper_ok boolean;
BEGIN
    IF value = 'NaN' THEN
        RETURN 'NaN';
    ELSIF value = 'Infinity' THEN
        RETURN 'Infinity';
    ELSIF value = '-Infinity' THEN
        RETURN '-Infinity';
    ELSIF value = 0 THEN
        RETURN CASE WHEN CAST(value AS text) LIKE '-%' THEN '-0' ELSE '0' END;
    END IF;
    number := abs(value);
    -- The shortest round-trip digits and the decimal exponent of |number|:
    -- '1e-07' -> 1, -7; '1.5e+20' -> 15, 20; '123.45' -> 12345, 2; '0.00123' -> 123, -3.
    shortest := CAST(number AS text);
    IF strpos(shortest, 'e') > 0 THEN
        digits := replace(split_part(shortest, 'e', 1), '.', '');
        exponent := CAST(split_part(shortest, 'e', 2) AS int);
    ELSE
        digits := btrim(replace(shortest, '.', ''), '0');
        exponent := CASE WHEN number >= 1 THEN length(split_part(shortest, '.', 1)) - 1
                         ELSE length(digits) - length(split_part(shortest, '.', 2)) - 1 END;
    END IF;
    IF exponent BETWEEN 14 AND 18 AND number < 9.2e18 THEN
        -- Rust and JavaScript print the fewest digits that parse back to the
        -- same double, a tie exactly half-way to the next double included
        -- (parsing rounds ties to even), and of two such candidates the
        -- nearer, on a tie the larger. PostgreSQL's shortest digits never end
        -- on such a half-way point and break a last-digit tie to the even
        -- digit. Both differences need a double whose exact decimal has at most
        -- 18 digits near its 17-digit precision: numbers of 1e14 and above.
        -- So there, from the exact value (an int8 and a fraction of at most six
        -- binary digits), try one digit fewer than PostgreSQL's, else as many:
        -- 62558504058760576 is 6.255850405876058e16 (not ...0576e16),
        -- 1213547787436797.25 is 1.2135477874367973e15 (not ...972e15).
        exact := CAST(CAST(trunc(number) AS int8) AS numeric) + CAST(number - trunc(number) AS numeric);
        FOR attempt IN 1 .. 2 LOOP
            -- Candidates are whole multiples of unit = 10^unit_exponent.
            unit_exponent := exponent - length(digits) + 3 - attempt;
            unit := power(10::numeric, unit_exponent);
            lower_value := floor(exact / unit) * unit;
            upper_value := lower_value + unit;
            lower_ok := (attempt = 2 OR length(digits) > 1) AND CAST(lower_value AS float8) = number;
            upper_ok := (attempt = 2 OR length(digits) > 1) AND CAST(upper_value AS float8) = number;
            EXIT WHEN lower_ok OR upper_ok;
        END LOOP;
        lower := CAST(trim_scale(lower_value / unit) AS text);
        upper := CAST(trim_scale(upper_value / unit) AS text);
        IF lower_ok THEN
            exponent := length(lower) - 1 + unit_exponent;
        ELSE
            exponent := length(upper) - 1 + unit_exponent;
        END IF;
        lower := rtrim(lower, '0');
        upper := rtrim(upper, '0');
        IF lower_ok AND upper_ok
           AND (length(upper) < length(lower) OR (length(upper) = length(lower) AND upper_value - exact <= exact - lower_value)) THEN
            lower_ok := false;
            -- upper_value may have carried into one more digit (9.99e16 -> 1e17).
            exponent := length(CAST(trim_scale(upper_value / unit) AS text)) - 1 + unit_exponent;
        END IF;
        IF lower_ok THEN
            digits := lower;
        ELSIF upper_ok THEN
            digits := upper;
        END IF;
    END IF;
    RETURN CASE WHEN value < 0 THEN '-' ELSE '' END || left(digits, 1)
        || CASE WHEN length(digits) > 1 THEN '.' || substr(digits, 2) ELSE '' END || 'e' || exponent;
END
$function$;

CREATE OR REPLACE FUNCTION thaw_reconcile.canonical_json_lines(path text, node jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $function$
DECLARE
    lines text[] := '{}';
    kind text := jsonb_typeof(node);
    members jsonb;
    member_count int;
    child jsonb;
    child_path text;
    key text;
    previous_key text := '';
    in_order boolean := true;
BEGIN
    IF kind = 'object' THEN
        members := jsonb_path_query_array(node, '$.keyvalue()');
        member_count := jsonb_array_length(members);
        IF member_count = 0 THEN
            RETURN ARRAY[path || '={}'];
        END IF;
    ELSIF kind = 'array' THEN
        member_count := jsonb_array_length(node);
        IF member_count = 0 THEN
            RETURN ARRAY[path || '=[]'];
        END IF;
        in_order := member_count <= 10;
    ELSE
        member_count := 1;
    END IF;
    FOR i IN 0 .. member_count - 1 LOOP
        IF kind = 'object' THEN
            child := members -> i;
            key := CAST(child -> 'key' AS text);
            child := child -> 'value';
            child_path := path || '.' || key;
            IF key < previous_key COLLATE "C" THEN
                in_order := false;
            END IF;
            previous_key := key;
        ELSIF kind = 'array' THEN
            child := node -> i;
            child_path := path || '[' || i || ']';
        ELSE
            child := node;
            child_path := path;
        END IF;
        CASE jsonb_typeof(child)
        WHEN 'number' THEN
            -- jsonb holds no -0: a zero is '0'.
            lines := array_append(lines, child_path || '=' || thaw_reconcile.canonical_float(CAST(child AS float8)));
        WHEN 'object', 'array' THEN
            lines := lines || thaw_reconcile.canonical_json_lines(child_path, child);
        ELSE
            lines := array_append(lines, child_path || '=' || CAST(child AS text));
        END CASE;
    END LOOP;
    IF in_order THEN
        RETURN lines;
    END IF;
    RETURN ARRAY(SELECT line FROM unnest(lines) AS line ORDER BY line COLLATE "C");
END
$function$;

-- The canonical text of a whole value; NULL for SQL NULL. A plain SQL
-- function, so the planner inlines it into the calling query (STABLE like
-- array_to_string: an IMMUTABLE wrapper of a STABLE body is not inlined).
CREATE OR REPLACE FUNCTION thaw_reconcile.canonical_json(document jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $function$
    SELECT array_to_string(thaw_reconcile.canonical_json_lines('$', document), ',')
$function$;

-- Reconcile runs as the loader (docs/operations.md §8); functions are
-- executable by PUBLIC, the schema needs USAGE.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'thaw_loader') THEN
        GRANT USAGE ON SCHEMA thaw_reconcile TO thaw_loader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'thaw_migrator') THEN
        GRANT USAGE, CREATE ON SCHEMA thaw_reconcile TO thaw_migrator;
    END IF;
END
$$;
