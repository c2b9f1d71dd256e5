"""Helpers of the serving tests (a module of its own: `conftest` names clash across folders)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

FEATURES = np.array([[0.1, -0.2, 0.3, 0.4], [1.0, 0.5, -1.5, 2.0], [-0.3, 0.2, 0.1, 0.0]], np.float32)


def copy_version(source: str, base: Path, version: int) -> Path:
    """Copies an exported version folder to `base/<version>`."""
    target = Path(base) / str(version)
    shutil.copytree(source, target)
    return target


def http(url: str, body=None, method: str | None = None, raw: bytes | None = None, timeout: float = 30):
    """`(status, parsed JSON or text)` of one request; HTTP errors are answers, not exceptions."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode()
