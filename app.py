"""Start coopbot: bring the index up to date with knowledge/, then chat.

Until the web UI lands this is the terminal chat; `python app.py` stays the way to start the app.
"""

import sys

from coopbot.cli import app

if __name__ == "__main__":
    status = app(["ingest"], standalone_mode=False)
    if status:
        sys.exit(status)
    app(["chat"])
