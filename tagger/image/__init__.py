"""Whole images as data: reading saved and remote images (``archive``), measuring their
waste (``analyze``) and squashing their own layers (``squash``).

Importing this package is cheap: no docker SDK and no requests at import time.
"""
