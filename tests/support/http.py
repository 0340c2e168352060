"""One HTTP client for the tests' one-off requests (polling a server until it answers,
a request from a helper thread).

``httpx.get()``/``httpx.post()`` build a new client, and with it an SSL context that loads
the CA bundle, on every call: about 26 ms of CPU each, against 0.2 ms through a client
made once — and the suite polls servers thousands of times. Connections are not kept
alive, so no request ever lands on a connection to a server that has since stopped.
"""

from __future__ import annotations

import httpx

HTTP = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
