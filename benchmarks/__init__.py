"""COW-vs-plain benchmarks: ``make bench`` (``python -m benchmarks``).

One throwaway PostgreSQL server (``tests.postgres_server.running_postgres``), one database
owned by a non-superuser role, two identical tables: ``plain_items`` used directly and
``items`` with copy-on-write enabled. Each case times the same work on both and reports the
COW/plain ratio of the medians against a target. Case 8 (:mod:`benchmarks.operations`)
times the review of a session of many operations on its own pair of tables. The run is a
report: it exits 0 whether the targets are met or not, and nonzero only when something
crashes.
"""
