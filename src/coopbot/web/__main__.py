"""`python -m coopbot.web`: the web server, what `coopbot serve` and `python app.py` start."""

from coopbot.web.server import main

main()
