"""Tag retention for ``imgtag prune``.

- ``plan``: keep rules, digest safety and the plan (pure);
- ``gather``: what a repository holds, read from the registry (I/O);
- ``execute``: carries a plan out with a re-check before each delete (I/O);
- ``untagged``: ``--untagged`` on ghcr, versions without a tag nothing needs (pure plan,
  I/O executor);
- ``run``: settings, the run over several repositories through the clients it is handed,
  its result (I/O);
- ``report``: the plan table, json, summary and failures of a result (pure).
"""
