import sys

from lab.lab import main

sys.exit(main())
