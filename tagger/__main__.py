"""``python -m tagger`` runs the ``imgtag`` command line."""

from tagger.cli import main

raise SystemExit(main())
