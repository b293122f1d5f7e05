"""The fault suite: real processes (workers, web, IVR nodes, Redis, PostgreSQL, Kamailio)
killed, restarted or starved while they work, and what reached the carrier counted.
`scripts/test.sh` runs it once, in the PostgreSQL pass; FAULT_TRIALS and FAULT_FULL=1 give
the long variants whose results are in docs/reliability.md."""
