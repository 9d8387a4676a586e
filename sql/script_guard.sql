{#- The first statements of a script `agentcow sql` prints: it applies only where the kit it
    was made for is deployed (PL/pgSQL plans the second query only once the first passed). -#}
IF pg_catalog.to_regclass('agentcow.kit') IS NULL THEN
    RAISE EXCEPTION 'agentcow: the kit is not deployed in this database: deploy it first (agentcow deploy)'
        USING ERRCODE = 'undefined_object';
END IF
--;
IF (SELECT k.version FROM agentcow.kit k) IS DISTINCT FROM {{ version|literal }} THEN
    RAISE EXCEPTION 'agentcow: this script needs kit %, the database has %', {{ version|literal }},
        (SELECT k.version FROM agentcow.kit k)
        USING ERRCODE = 'object_not_in_prerequisite_state';
END IF
