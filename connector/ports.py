"""Free TCP ports for the demo and the tests' servers."""

import socket


def free_port(exclude: tuple[int, ...] = ()) -> int:
    """A TCP port free on all interfaces (Orthanc 1.10 binds them all), not in `exclude`."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        if port not in exclude:
            return port
