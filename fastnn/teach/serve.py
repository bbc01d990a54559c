"""``fastnn serve [DIR]``: the pages in DIR over HTTP on this computer only.

A standard-library ``http.server`` bound to the loopback address 127.0.0.1, never to
another interface, so nothing on the network can reach it. The pages work from disk as
well (``file://``); the server is for browsers or set-ups that prefer ``http://``.
"""

import functools
import os
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["HOST", "make_server", "serve", "page_urls"]

HOST = "127.0.0.1"   # loopback only, on purpose: there is no option to change it


def make_server(directory, port=0):
    """An HTTP server for ``directory`` on 127.0.0.1:``port`` (0: a free port), not yet serving;
    it logs one line per request on stderr.
    ValueError when the folder does not exist; OSError when the port is taken."""
    if not os.path.isdir(directory):
        raise ValueError(f"{directory}: no such folder (write a page first, e.g. fastnn playground --out {directory})")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"--port must be an integer from 0 to 65535, got {port!r}")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=os.path.abspath(directory))
    return ThreadingHTTPServer((HOST, port), handler)


def page_urls(server, directory):
    """``http://127.0.0.1:PORT/`` and the URL of each HTML page at the top of ``directory``."""
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}/"
    pages = sorted(name for name in os.listdir(directory) if name.endswith(".html"))
    return base, [base + name for name in pages]


def serve(directory, port=8000, out=print):
    """Serve ``directory`` until interrupted; prints the URLs first."""
    server = make_server(directory, port)
    base, pages = page_urls(server, directory)
    out(f"serving {os.path.abspath(directory)} at {base} (127.0.0.1 only; Ctrl+C stops)", flush=True)
    for url in pages:
        out(f"  {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out("stopped", flush=True)
    finally:
        server.server_close()
    return 0
