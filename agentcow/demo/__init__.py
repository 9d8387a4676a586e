"""``agentcow demo``: the whole story in under a minute, on a throwaway PostgreSQL or in a
scratch schema of a server of yours (:mod:`agentcow.demo.story`)."""
