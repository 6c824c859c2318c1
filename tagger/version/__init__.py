"""Versions: git release tags in, immutable ``X.Y.Z[-PRE]-N`` image tags out.

- ``grammar``: the image-tag grammar and its ordering (pure);
- ``bump``: release tags, bumps and Conventional Commits (pure);
- ``ci_env``: which CI this is and its build counter (pure, reads a mapping);
- ``git``: the only module that runs git (I/O);
- ``next``: ``imgtag next``'s executor, gathering facts for the planners (I/O).
"""
