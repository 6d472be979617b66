"""Where compiled code is kept between runs: a user cache directory, never the installed package.

``$XDG_CACHE_HOME/workbench`` (default ``~/.cache/workbench``). numba's disk cache of the EM
kernels (``cache=True``) goes to its ``numba/em-<hash of the EM sources>/`` folder unless
``NUMBA_CACHE_DIR`` is set: the variable is set for this process and the worker processes it
starts, before numba is imported (numba is never imported here). numba checks only the file
that defines a cached function, so a kernel calling a kernel of another file (the covariance
strategies call ``products.py``) would keep running the callee's old code after an edit. With
a folder per version of the sources, the first run after any edit compiles every kernel afresh.
Folders of older versions are left in place (another checkout may still be using one). PyTensor
keeps its own compile cache (``~/.pytensor``, the ``base_compiledir`` flag), which holds the
numba code of the Bayes models.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/workbench``, or ``~/.cache/workbench``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench"


EM_SOURCES = Path(__file__).parent / "em"  # every numba-compiled function lives here


def code_version(sources: Path = EM_SOURCES) -> str:
    """A hash of the names and contents of the ``.py`` files under ``sources``."""
    digest = hashlib.sha256()
    for path in sorted(sources.rglob("*.py")):
        digest.update(path.relative_to(sources).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def use_numba_cache() -> Path | None:
    """Point numba's disk cache at ``cache_dir() / "numba" / "em-<code_version()>"`` unless
    ``NUMBA_CACHE_DIR`` is set already (then that is used). Returns the folder in use, or None
    when neither can be written (numba then keeps its own default). Call before the kernels are
    defined (importing ``workbench`` does); when numba is imported already its config is updated
    too."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if not chosen:
        path = cache_dir() / "numba" / f"em-{code_version()}"
        if not _writable(path):
            return None
        chosen = os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:
        config = sys.modules.get("numba.core.config")
        if config is not None and not getattr(config, "CACHE_DIR", ""):
            config.CACHE_DIR = chosen
    return Path(chosen)


def numba_cache_holds(source_dir: Path, stem: str) -> bool:
    """Whether numba's cache folder for the source files in ``source_dir`` holds an index for
    module ``stem`` (numba names that folder ``<dir name>_<sha1 of the absolute dir>``)."""
    root = os.environ.get("NUMBA_CACHE_DIR")
    if not root:
        return False
    absolute = os.path.abspath(source_dir)
    folder = f"{os.path.basename(absolute)}_{hashlib.sha1(absolute.encode()).hexdigest()}"
    return any((Path(root) / folder).glob(f"{stem}.*.nbi"))
