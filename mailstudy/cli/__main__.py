"""``python -m mailstudy.cli``: the same as the ``mailstudy`` command."""

import sys

from mailstudy.cli.commands import main

sys.exit(main())
