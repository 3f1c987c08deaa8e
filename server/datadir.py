"""The data folder holds the documents, the password hashes and the key that signs cookies, so only
its owner may open it: the folder and the folders under it are made 0700 and its files 0600, on
every start (which also tightens a folder made by an older version).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def protect(data_dir: Path) -> None:
    """Make `data_dir` (if need be) and make it and everything in it owner-only. Links inside it
    are neither followed nor changed: a linked model cache, say, keeps the modes it has."""
    data_dir.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    _tighten(data_dir.resolve(), FOLDER_MODE)  # the folder itself, wherever a link to it leads
    for folder, subfolders, files in os.walk(data_dir):  # does not descend into linked folders
        here = Path(folder)
        for name in subfolders:
            _tighten(here / name, FOLDER_MODE)
        for name in files:
            _tighten(here / name, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    try:
        now = path.lstat()
        if stat.S_ISLNK(now.st_mode) or stat.S_IMODE(now.st_mode) & ~mode == 0:
            return  # a link, or already no looser than `mode`
        path.chmod(stat.S_IMODE(now.st_mode) & mode)
    except FileNotFoundError:  # removed meanwhile (SQLite's -shm at shutdown, say)
        pass
    except PermissionError:
        log.warning("could not make %s readable by its owner only (chmod %o): not our file", path, mode)
