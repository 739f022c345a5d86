"""Templating: a template's name -> its text rendered by the one Jinja environment, from one directory.

Every generated file (C kernels, cffi cdefs, LaTeX documents, the catalogue's README) comes from a template in
``TEMPLATES_DIR``; codegen and printing both render through ``environment()``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2

from .version import __version__

__all__ = ["TEMPLATES_DIR", "environment", "keyed"]


def _templates_dir() -> Path:
    # An installed wheel carries the templates as package data in symconv/templates (pyproject.toml maps the
    # repository's templates/ there); a source checkout or an editable install finds them at the repo root.
    package = Path(__file__).resolve().parent
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


TEMPLATES_DIR: Final[Path] = _templates_dir()
"""The one place templates are resolved from."""


@cache
def environment() -> jinja2.Environment:
    """The Jinja environment: strict about undefined names, whitespace controlled by the templates.

    >>> environment().from_string("{{ 6 * 7 }}").render()
    '42'
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # C, not HTML
    )


def keyed(template: str, description: str, **context: Any) -> str:
    """A standalone C template (no layer behind it: the peak benchmark, the checked calls) rendered with its
    banner, whose key is a hash of the text itself.

    >>> keyed("banner.c.j2", "a test").split("; ")[1][:4]
    'key '
    """
    text = environment().get_template(template).render(
        version=__version__, template=template, key="-", description=description, **context)
    return text.replace("key -;", "key " + hashlib.sha256(text.encode()).hexdigest()[:16] + ";", 1)
