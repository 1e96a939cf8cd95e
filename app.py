"""Start coopbot: bring the index up to date with knowledge/, then serve the web UI and the HTTP API.

`python app.py` is `coopbot serve`: http://127.0.0.1:7860/ (COOPBOT_HOST, COOPBOT_PORT); the terminal
chat is still `coopbot chat`.
"""

from coopbot.web.server import main

if __name__ == "__main__":
    main()
