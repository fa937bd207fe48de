"""Regenerate the pictures and printed outputs of docs/autodiff.md and docs/autodiff.zh-TW.md.

The pages are their own source: this script runs each page's ```python blocks in order (one
shared namespace, like a notebook) with docs/images/ as the working directory, so the
``g.render("....svg")`` calls in the pages write the pictures the pages show. The text each
block prints replaces the ```text block that follows it. Nothing in the pages is drawn or
typed by hand.

    python docs/make_autodiff_images.py           # rewrite docs/images/*.svg and the outputs
    python docs/make_autodiff_images.py --check   # compare only; exit status 1 on a difference

``tests/viz/test_viz_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGES = [DOCS / "autodiff.md", DOCS / "autodiff.zh-TW.md"]
IMAGES = DOCS / "images"
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def blocks(text: str) -> list[tuple[str, int, int, int, str]]:
    """(language, fence line number, start offset, end offset, code) of each fenced block."""
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 1, m.start(2), m.end(2), m.group(2))
        for m in FENCE.finditer(text)
    ]


def run_page(page: Path, workdir: Path) -> list[tuple[int, str]]:
    """Run a page's Python blocks in ``workdir``; the (fence line, printed text) of each.

    Each block is compiled under the page's own path with its real line numbers, so tracebacks
    and ``detect_anomaly`` messages point at the page's lines.
    """
    text = page.read_text(encoding="utf-8")
    namespace: dict = {"__name__": "__autodiff_doc__"}
    results = []
    here = Path.cwd()
    os.chdir(workdir)
    try:
        for lang, line, _, _, code in blocks(text):
            if lang != "python":
                continue
            buffer = io.StringIO()
            compiled = compile("\n" * line + code, str(page), "exec")
            with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's log(0) warning
                exec(compiled, namespace)
            results.append((line, buffer.getvalue()))
    finally:
        os.chdir(here)
    return results


def with_outputs(text: str, outputs: list[tuple[int, str]]) -> str:
    """The page with the ```text block after each Python block replaced by its output."""
    printed = dict(outputs)
    found = blocks(text)
    pieces, last = [], 0
    for (lang, line, *_), nxt in zip(found, found[1:]):
        if lang != "python" or nxt[0] != "text":
            continue
        start, end = nxt[2], nxt[3]
        pieces.append(text[last:start])
        pieces.append(printed[line].rstrip("\n") + "\n")
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def regenerate(page: Path, workdir: Path) -> str:
    """Run the page until its outputs are stable (an output of another length moves the lines
    that later messages quote); returns the page's new text."""
    text = page.read_text(encoding="utf-8")
    for _ in range(3):
        scratch = workdir / page.name
        scratch.write_text(text, encoding="utf-8")
        new = with_outputs(text, run_page(scratch, workdir))
        if new == text:
            break
        text = new
    return text


def differences(workdir: Path) -> list[str]:
    """What would change if the script ran now (pages and pictures), as messages."""
    problems = []
    for page in PAGES:
        out = workdir / page.stem.replace(".", "_")
        out.mkdir(parents=True, exist_ok=True)
        new = regenerate(page, out)
        if new != page.read_text(encoding="utf-8"):
            problems.append(f"{page.name}: a printed output differs from what the code prints")
        for picture in sorted(out.glob("*.svg")):
            committed = IMAGES / picture.name
            if not committed.exists() or committed.read_bytes() != picture.read_bytes():
                problems.append(f"{page.name}: images/{picture.name} differs from what it draws")
        for link in re.findall(r"\]\((images/[^)]+)\)", new):
            if not (DOCS / link).exists():
                problems.append(f"{page.name}: links {link}, which does not exist")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Rewrite the pictures and outputs, or with ``--check`` only report differences."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; change nothing")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            problems = differences(Path(tmp))
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    IMAGES.mkdir(exist_ok=True)
    for page in PAGES:
        with tempfile.TemporaryDirectory() as tmp:
            new = regenerate(page, Path(tmp))
            for picture in Path(tmp).glob("*.svg"):
                os.replace(picture, IMAGES / picture.name)
        if new != page.read_text(encoding="utf-8"):
            partial = page.with_name(f".{page.name}.partial")
            partial.write_text(new, encoding="utf-8")
            os.replace(partial, page)
            print(f"updated {page.relative_to(DOCS.parent)}")
    print(f"pictures in {IMAGES.relative_to(DOCS.parent)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
