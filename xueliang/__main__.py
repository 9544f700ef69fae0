import sys

from xueliang.cli import main

sys.exit(main())
