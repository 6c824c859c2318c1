"""imgtag: immutable ``X.Y.Z-N`` tags for container images.

The package is named ``tagger``; the console script is ``imgtag``. Nothing heavy is
imported here: ``imgtag next`` must start fast (``docs/architecture.md``, "Lazy imports").
"""

__version__ = "0.1.0.dev0"
