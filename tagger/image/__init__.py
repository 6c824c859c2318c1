"""Whole images as data: opening stored layers (``layers``: compression, the one gunzip),
replaying layer headers into a file tree (``overlay``: whiteouts, hard links), reading saved
and remote images (``archive``, ``remote``), measuring their waste (``analyze``), choosing
their base (``base``) and squashing their own layers (``squash_plan``, ``squash``).

Importing this package is cheap: no docker SDK and no requests at import time.
"""
