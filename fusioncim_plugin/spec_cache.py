"""On-disk cache of instantiated arch specs, so that a new process skips AccelForge.

Instantiating an arch spec (``arch.load_arch``: import AccelForge, parse and validate
the YAML, ask hwcomponents for every component's costs) takes about 1.4 s per process;
its result is a few kB of numbers. This module keeps that result as one JSON file per
key in the cache directory:

  ``$FUSIONCIM_CACHE_DIR`` if set (``off``, ``0`` or ``none`` disables the cache), else
  ``$XDG_CACHE_HOME/fusioncim``, else ``~/.cache/fusioncim``.

The key is a SHA-256 of everything the numbers depend on:

* the spec file's text, the text of every file it includes (Jinja ``{% include %}``,
  ``include(...)``, ``include_all(...)``, ``include_text(...)``, YAML ``!include``) and
  of the other files AccelForge parses with it (the workload), recursively; a spec that
  includes a computed path (not a string literal) or a directory is never cached;
* the Jinja variables (overrides);
* Python's version, the installed versions of accelforge, hwcomponents and every
  ``hwcomponents*`` distribution (the component-model plugins), and the size and mtime
  of every ``hwcomponents_*`` module found directly on ``sys.path`` and of every Python
  file in a directory a spec adds with ``add_to_path``;
* this package's component-model sources (``fusioncim_plugin/components``,
  ``tables.py``), the code that validates the variables and reads the spec
  (``variables.py``, ``arch.py``) and every energy table in
  :func:`fusioncim_plugin.tables.tables_dir`, by content.

Entries are keyed by the variables as the caller gave them and stored only after they
passed ``variables.validate_overrides``, so a hit skips the validation too.

Concurrency: a file is written to a temporary file in the same directory and moved into
place with ``os.replace`` (atomic on POSIX), so a reader sees a whole old file, a whole
new file or none; writers of one key write the same bytes. A file that cannot be read,
does not parse or holds another key is a miss, and the next store replaces it. Errors
are never cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

ENV_VAR = "FUSIONCIM_CACHE_DIR"
FORMAT = 1  # bump when the stored layout changes
PACKAGE_DIR = Path(__file__).resolve().parent

# include forms AccelForge's YAML loader understands (accelforge/util/_yaml.py): any
# use of one must be a string literal that we can follow, else the spec is not cached
_INCLUDE_USE = re.compile(r"\{%-?\s*include\b|\b(?:include(?:_all|_text)?|add_to_path)\s*\("
                          r"|!include(?:dir)?\b")
_INCLUDE_LITERAL = re.compile(
    r"""\{%-?\s*include\s+(?P<q1>["'])(?P<p1>[^"']+)(?P=q1)"""  # {% include "f" %}
    r"""|\b(?P<fn>include(?:_all|_text)?|add_to_path)\s*\(\s*(?P<q2>["'])(?P<p2>[^"']+)(?P=q2)"""
    r"""|!include\s+(?P<p3>[^\s,}\]]+)""")


_off = False  # set by disabled()


@contextlib.contextmanager
def disabled():
    """Neither read nor write the cache inside this block (e.g. to time AccelForge)."""
    global _off
    prev, _off = _off, True
    try:
        yield
    finally:
        _off = prev


def cache_dir() -> Path | None:
    """Where the cache lives, or None when disabled."""
    if _off:
        return None
    env = os.environ.get(ENV_VAR)
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none", "false") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fusioncim"


def _spec_files(path: Path, seen: dict[Path, bytes], dirs: set[Path]) -> bool:
    """Add ``path`` and everything it includes to ``seen``; False if some include is
    not a literal file path (then the spec is not cached)."""
    path = path.resolve()
    if path in seen:
        return True
    data = path.read_bytes()
    seen[path] = data
    text = data.decode("utf-8", "replace")
    literal = {m.start(): m for m in _INCLUDE_LITERAL.finditer(text)}
    for use in _INCLUDE_USE.finditer(text):
        m = literal.get(use.start())
        if m is None:
            return False  # a computed path or a directory: cannot key it
        target = (path.parent / (m["p1"] or m["p2"] or m["p3"])).resolve()
        if m["fn"] == "add_to_path":
            dirs.add(target)
        elif not target.is_file() or not _spec_files(target, seen, dirs):
            return False
    return True


def _plugin_fingerprint(extra_dirs: set[Path]) -> list:
    """Versions of the component-model distributions and stats of plugin sources."""
    dists, modules = set(), {PACKAGE_DIR.parent / "hwcomponents_fusioncim.py"}
    for entry in sys.path:
        d = Path(entry or os.getcwd())
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            low = n.lower()
            if low.endswith((".dist-info", ".egg-info")) and "-" in low[:-9] and \
                    low.startswith(("accelforge-", "hwcomponents")):
                dists.add(n)  # name-version.dist-info (not a source tree's build egg-info)
            elif low.startswith("hwcomponents_") and (low.endswith(".py") or "." not in n):
                modules.add((d / n).resolve())
    for d in extra_dirs:
        modules.update(p.resolve() for p in d.glob("*.py"))
    return sorted(dists) + [_stat(p) for p in sorted(modules)]


def _stat(p: Path) -> list:
    try:
        s = p.stat()
        return [str(p), s.st_size, s.st_mtime_ns]
    except OSError:
        return [str(p), None]


def _own_sources() -> list:
    """This package's component models and energy tables, by content."""
    from .tables import tables_dir

    h = hashlib.sha256()
    files = sorted((PACKAGE_DIR / "components").glob("*.py"))
    files += [PACKAGE_DIR / n for n in ("tables.py", "arch.py", "variables.py")]
    files += sorted(tables_dir().glob("*.yaml"))
    for p in files:
        h.update(str(p.name).encode() + b"\0")
        try:
            h.update(p.read_bytes())
        except OSError:
            h.update(b"<missing>")
    return [str(tables_dir()), h.hexdigest()]


def key(spec_paths: list[str | Path], variables: dict) -> str | None:
    """The cache key of instantiating ``spec_paths`` with ``variables``; None if the
    cache is disabled or the spec cannot be keyed."""
    if cache_dir() is None:
        return None
    seen: dict[Path, bytes] = {}
    dirs: set[Path] = set()
    try:
        for p in spec_paths:
            if not _spec_files(Path(p), seen, dirs):
                return None
        parts = [FORMAT, sys.version, [[str(p), hashlib.sha256(b).hexdigest()]
                                       for p, b in seen.items()],
                 sorted((str(k), repr(v)) for k, v in variables.items()),
                 _plugin_fingerprint(dirs), _own_sources()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
    except (OSError, TypeError, ValueError):
        return None


def load(k: str | None) -> dict | None:
    """The stored value of key ``k``, or None (a miss: absent, unreadable, corrupt)."""
    d = cache_dir()
    if k is None or d is None:
        return None
    try:
        doc = json.loads((d / f"{k}.json").read_text())
        return doc["value"] if doc.get("key") == k and doc.get("format") == FORMAT else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def store(k: str | None, value: dict) -> bool:
    """Write ``value`` under ``k`` atomically; False if it could not be written (the
    cache is an optimisation: a read-only or full disk only costs time)."""
    d = cache_dir()
    if k is None or d is None:
        return False
    try:
        text = json.dumps({"format": FORMAT, "key": k, "value": value})
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{k[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, d / f"{k}.json")
        except BaseException:
            os.unlink(tmp)
            raise
        return True
    except (OSError, TypeError, ValueError):
        return False
