"""The built-in functions and operators an agent's SQL may use: pure computations on the
values the statement reads (arithmetic, strings, dates, JSON, arrays, aggregates, windows).

Left out on purpose: anything that reads or changes the session or the server
(``set_config``, ``current_setting``, ``pg_*``, ``txid_*``, advisory locks, ``setseed``),
waits (``pg_sleep``), reaches outside the statement (``dblink*``, ``lo_*``, ``pg_read_file``,
``query_to_xml`` and the other ``*_to_xml``), reads the catalog by name (``to_regclass``,
``has_*_privilege``), draws from sequences (``nextval``; column defaults still do), and
``generate_series``, whose size the agent chooses (list it to allow it).
"""

from __future__ import annotations

_MATH = """abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale
mod pi power radians random round scale sign sqrt trim_scale trunc width_bucket acos acosd
asin asind atan atan2 atan2d atand cos cosd cot cotd sin sind tan tand sinh cosh tanh asinh
acosh atanh"""

_STRING = """ascii bit_length btrim char_length character_length chr concat concat_ws
convert_from convert_to decode encode format initcap left length lower lpad ltrim md5 normalize
octet_length overlay position quote_ident quote_literal quote_nullable regexp_count
regexp_instr regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array
regexp_split_to_table regexp_substr repeat replace reverse right rpad rtrim sha224 sha256
sha384 sha512 split_part starts_with strpos substr substring to_ascii to_hex translate trim
unistr upper casefold get_byte get_bit string_to_array string_to_table array_to_string"""

_DATETIME = """age clock_timestamp date_add date_bin date_part date_subtract date_trunc extract
isfinite justify_days justify_hours justify_interval make_date make_interval make_time
make_timestamp make_timestamptz now statement_timestamp timeofday transaction_timestamp
to_char to_date to_number to_timestamp timezone"""

_JSON = """to_json to_jsonb array_to_json row_to_json json_build_array jsonb_build_array
json_build_object jsonb_build_object json_object jsonb_object json_array_length
jsonb_array_length json_each jsonb_each json_each_text jsonb_each_text json_extract_path
jsonb_extract_path json_extract_path_text jsonb_extract_path_text json_object_keys
jsonb_object_keys json_populate_record jsonb_populate_record json_populate_recordset
jsonb_populate_recordset json_array_elements jsonb_array_elements json_array_elements_text
jsonb_array_elements_text json_typeof jsonb_typeof json_to_record jsonb_to_record
json_to_recordset jsonb_to_recordset json_strip_nulls jsonb_strip_nulls jsonb_set
jsonb_set_lax jsonb_insert jsonb_pretty jsonb_path_exists jsonb_path_match jsonb_path_query
jsonb_path_query_array jsonb_path_query_first json_agg jsonb_agg json_object_agg
jsonb_object_agg json_scalar json_serialize json json_array json_objectagg json_arrayagg
json_exists json_value json_query"""

_AGGREGATES = """count sum avg min max array_agg string_agg bool_and bool_or every bit_and
bit_or bit_xor stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop
covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx
regr_sxy regr_syy mode percentile_cont percentile_disc any_value range_agg grouping"""

_WINDOW = """row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value
last_value nth_value"""

_OTHER = """coalesce nullif greatest least num_nulls num_nonnulls gen_random_uuid uuidv4
uuidv7 uuid_extract_timestamp uuid_extract_version array_append array_cat array_dims
array_fill array_length array_lower array_ndims array_position array_positions
array_prepend array_remove array_replace array_upper array_reverse array_sample
array_shuffle array_sort cardinality trim_array unnest lower_inc upper_inc lower_inf
upper_inf isempty range_merge int4range int8range numrange tsrange tstzrange daterange
to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank
ts_rank_cd ts_headline date text int2 int4 int8 float4 float8 bool"""


def words(text: str) -> frozenset[str]:
    """The set of the space-separated words of ``text``."""
    return frozenset(text.split())


#: Built-in functions allowed by default, by name (lowercase; also as ``pg_catalog.name``).
SAFE_FUNCTIONS = words(" ".join((_MATH, _STRING, _DATETIME, _JSON, _AGGREGATES, _WINDOW, _OTHER)))

#: Operators allowed, as PostgreSQL's lexer reads them (comparison, arithmetic, text,
#: pattern, JSON, array, range and text search; ``=>`` names a function's argument).
SAFE_OPERATORS = words(
    """+ - * / % ^ < > = <= >= <> != || |/ ||/ @ & | # ~ << >> ~* !~ !~* ~~ ~~* !~~ !~~*
    @> <@ && -> ->> #> #>> #- ? ?| ?& @? @@ <-> -|- &< &> =>"""
)
