import sys

from engine.secrets.cli import main

if __name__ == "__main__":
    sys.exit(main())
