"""Who may reach ``h2ot serve``, decided before the web stack is imported (``h2ot --help`` stays fast): the
token's environment variable and whether an address is loopback."""

from __future__ import annotations

import ipaddress
import socket

from h2ot_core.environment import SERVE_TOKEN

#: the environment variable that holds the access token (``--token`` wins)
TOKEN_ENV_VAR = SERVE_TOKEN.name


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)
