import sys

from hepfpga.cli import main

sys.exit(main())
