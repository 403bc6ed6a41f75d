"""``python -m example_solution_operator``: the ``example-solution-operator`` command."""

import sys

from example_solution_operator.cli import main

sys.exit(main())
