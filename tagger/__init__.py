"""imgtag: immutable ``X.Y.Z-N`` tags for container images.

The package is named ``tagger``; the console script is ``imgtag``. Nothing heavy is
imported here: ``imgtag next`` must start fast (see DESIGN.md, performance targets).
"""

__version__ = "0.1.0.dev0"
