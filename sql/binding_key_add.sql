{#- A binding key, by its SHA-256 digest (the key itself never reaches the server here);
    no row back when the label is taken. -#}
INSERT INTO agentcow.binding_keys (label, key_digest)
VALUES ({{ label|literal }}, pg_catalog.decode({{ digest|literal }}, 'hex'))
ON CONFLICT (label) DO NOTHING
RETURNING label
