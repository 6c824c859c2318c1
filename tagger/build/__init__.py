"""Build and publish: the never-overwrite guard around a build (``imgtag build-push``).

- ``claim``: claim tags and their manifests (pure);
- ``aliases``: which floating tags may move (pure);
- ``labels``: the OCI labels a build gets (pure, reads a mapping);
- ``lease``: holding a claim while the run lives (registry);
- ``options``: build-push's option and result values (pure, ``resolve`` reads config);
- ``index``: the image index of a multi-platform build (pure);
- ``secret_files``: secrets as private temporary files (files);
- ``publish``: the guard itself: claim, build, check, push, verify, aliases (I/O);
- ``outputs``: ``$GITHUB_OUTPUT`` and ``--env-file`` (files);
- ``wiring``: ``publish()``, the real collaborators of the guard (I/O);
- ``builders``: docker, BuildKit and buildah behind one interface.
"""
