{#- Serialises concurrent deploys and makes the losers fail cleanly instead of half-applying.
    (The nested IF keeps PL/pgSQL from planning a query on agentcow.kit before it exists.) -#}
PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('agentcow.deploy'));
IF pg_catalog.to_regclass('agentcow.kit') IS NOT NULL THEN
    IF (SELECT k.version FROM agentcow.kit k) IS DISTINCT FROM {{ (installed or '')|literal }} THEN
        RAISE EXCEPTION 'agentcow: the kit was deployed concurrently; call deploy_cow_functions again'
            USING ERRCODE = 'serialization_failure';
    END IF;
END IF
