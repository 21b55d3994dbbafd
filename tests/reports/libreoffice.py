"""Render workbooks with real LibreOffice (headless) to PDF, and read the PDF back with poppler.

Each conversion uses a fresh LibreOffice profile (``-env:UserInstallation``) in its own folder, so
runs never share or lock a profile, and a timeout, so a hung soffice fails the test instead of
stalling it. Also a script: ``python tests/reports/libreoffice.py docs/`` renders the demo reports'
pages into PNGs for the manual.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
PDFTOPPM = shutil.which("pdftoppm")
PDFINFO = shutil.which("pdfinfo")
PDFTOTEXT = shutil.which("pdftotext")
TIMEOUT = 180.0


def available() -> bool:
    """Whether LibreOffice and poppler's tools are installed."""
    return all((SOFFICE, PDFTOPPM, PDFINFO, PDFTOTEXT))


def convert(source: Path, out_dir: Path, target: str = "pdf", *, infilter: str | None = None) -> Path:
    """``soffice --headless --convert-to <target>`` with a profile of its own; returns the output.
    ``infilter`` sets the import filter and its options (``CSV:44,34,76,1``: comma, double quote,
    UTF-8, from line 1)."""
    assert SOFFICE is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = [f"--infilter={infilter}"] if infilter else []
    with tempfile.TemporaryDirectory(prefix="lo-profile-") as profile:
        done = subprocess.run(
            [SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore", *extra,
             "--convert-to", target, "--outdir", str(out_dir), str(source)],
            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    produced = out_dir / f"{source.stem}.{target.split(':')[0]}"
    if done.returncode != 0 or not produced.exists():
        raise RuntimeError(f"soffice failed ({done.returncode}): {done.stdout} {done.stderr}")
    return produced


def page_count(pdf: Path) -> int:
    """Pages in a PDF (pdfinfo)."""
    assert PDFINFO is not None
    info = subprocess.run([PDFINFO, str(pdf)], capture_output=True, text=True, check=True, timeout=60).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def page_texts(pdf: Path) -> list[str]:
    """The text of each page (pdftotext, layout kept)."""
    assert PDFTOTEXT is not None
    text = subprocess.run([PDFTOTEXT, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    pages = text.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def page_png(pdf: Path, page: int, out: Path, *, dpi: int = 110) -> Path:
    """One page (1-based) as a PNG."""
    assert PDFTOPPM is not None
    stem = out.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([PDFTOPPM, "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile",
                    str(pdf), str(stem)], check=True, timeout=120)
    return stem.with_suffix(".png")


if __name__ == "__main__":
    import sys

    from demo_ledger import render_docs

    render_docs(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
