"""CI pipelines: ``imgtag ci PROVIDER`` renders the files of ``ci-templates/`` (``render``)."""
