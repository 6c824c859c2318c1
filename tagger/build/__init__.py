"""Build and publish: the never-overwrite guard around a build (``imgtag build-push``).

- ``claim``: claim tags and their manifests (pure);
- ``aliases``: which floating tags may move (pure);
- ``labels``: the OCI labels a build gets (pure, reads a mapping);
- ``publish``: the guard itself: claim, build, check, push, verify, aliases (I/O).
"""
