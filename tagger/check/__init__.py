"""``imgtag check IMAGE``: does the built image behave as the runtime practices ask.

Lint reads the Dockerfile; check runs the image. The checks CHK001 to CHK005 (``ids``)
and a container-structure-test file's tests (``structure``) each get one verdict in a
:class:`~tagger.check.results.Report`. The modules:

- ``results``: verdicts, results, the check table (pure);
- ``static``: CHK003, CHK004, CHK005 and the image facts they read (pure);
- ``structure``: container-structure-test files, parsed and judged (pure);
- ``runtime``: CHK001, CHK002 and the structure tests that need containers (engine);
- ``report``: text, json and JUnit (pure);
- ``settings``: options over ``[tool.imgtag.check]`` (reads the config file);
- ``run``: the executor that ties them together (engine, through ``tagger.engine``).

Importing this package imports nothing heavy.
"""
