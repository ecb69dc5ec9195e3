import sys

from es_mpi.cli import main

sys.exit(main())
