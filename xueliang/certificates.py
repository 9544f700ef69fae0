"""A CA certificate file a config names (the broker's ``tls_ca``, a camera's), checked when the config is read."""

from __future__ import annotations

import ssl
from pathlib import Path


def ca_certificate(path: Path, signed: str) -> Path:
    """``path``, where it is a file of CA certificates in PEM that TLS can check a server against; else a
    ValueError that names the file and says what it is for (``signed``: whose certificate the CA signed).

    >>> ca_certificate(Path("/no/such.crt"), "the broker's")
    Traceback (most recent call last):
    ...
    ValueError: no such file '/no/such.crt' (the CA certificate that signed the broker's)
    >>> ca_certificate(Path(__file__), "the camera's")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: '...certificates.py' is not a CA certificate in PEM (...)
    >>> ca_certificate(Path("/etc"), "the broker's")
    Traceback (most recent call last):
    ...
    ValueError: '/etc' is a folder; name the CA certificate file in it (the one that signed the broker's)
    """
    if path.is_dir():  # it was "no such file '/etc/xueliang'", of a folder that is there
        raise ValueError(f"{str(path)!r} is a folder; name the CA certificate file in it (the one that signed {signed})")
    if not path.is_file():
        raise ValueError(f"no such file {str(path)!r} (the CA certificate that signed {signed})")
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(f"{str(path)!r} is not a CA certificate in PEM ({exc})") from None
    return path
