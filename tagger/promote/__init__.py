"""``imgtag promote SRC DEST...``: release the image that was tested, digest for digest.

``plan`` decides (pure: references, the copy plan, signature tags, the result), ``copy``
carries a plan into one destination, ``run`` puts build-push's guard around each copy
(see ``docs/promote.md``).
"""
