"""The documentation: the MkDocs site builds strictly (broken links and anchors fail), and the README stays a short
guide whose links all resolve and whose two commands are the ones CI runs.

mkdocs comes with the test extra; a missing mkdocs fails here rather than skipping, so CI cannot pass without the
site being checked.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 250
DEMO_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . -c constraints.txt "
                "&& tlearn demo")
TEST_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' -c constraints.txt "
                "&& python -m pytest -q")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def _prose(markdown: str) -> str:
    """The markdown without fenced code blocks and inline code, where link syntax is only an example."""
    without_blocks = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", without_blocks)


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug (what MkDocs and GitHub-style anchors use for these headings)."""
    text = re.sub(r"[`*_]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(markdown_file: Path) -> set[str]:
    prose = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", markdown_file.read_text(), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, flags=re.M)}


def _relative_targets(markdown_file: Path) -> list[str]:
    prose = _prose(markdown_file.read_text())
    targets = LINK.findall(prose) + HTML_LINK.findall(prose)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.I)]  # http:, mailto:, ...


def test_mkdocs_site_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed; it comes with the test extra: pip install -e '.[test]'")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (site / "index.html").is_file() and (site / "results" / "index.html").is_file()
    assert (site / "images" / "report.png").is_file()


def test_readme_is_a_short_guide_with_the_two_commands():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    assert DEMO_COMMAND in lines and TEST_COMMAND in lines, "the README's two commands changed (CI runs them)"
    ci = (ROOT / ".ci" / "run").read_text()
    install_and_test = TEST_COMMAND.split(" && ", 2)[2]  # after creating and activating the venv
    assert install_and_test in ci, f"CI must run the README's test command: {install_and_test}"


def test_every_relative_link_in_the_readme_resolves():
    targets = _relative_targets(README)
    assert any(t.endswith(".png") for t in targets), "the README shows a picture of a report"
    broken = []
    for target in targets:
        path_part, _, anchor = target.partition("#")
        path = (README.parent / path_part).resolve() if path_part else README
        if not path.exists():
            broken.append(f"{target}: {path} does not exist")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.name}")
    assert not broken, "\n".join(broken)


def test_link_checker_sees_broken_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n[ok](page.md#top) [gone](missing.md) ![pic](img/none.png) `[code](not-a-link.md)`\n"
                    "```\n[block](also-not.md)\n```\n[web](https://example.org)\n")
    assert _relative_targets(page) == ["page.md#top", "missing.md", "img/none.png"]
    assert _anchors(page) == {"top"}
    assert _slug("Earlier run at reduced settings (64 px, 3 epochs)") == "earlier-run-at-reduced-settings-64-px-3-epochs"


def test_code_comments_point_at_existing_sections_of_the_docs():
    """Comments give a reason in a line and point to the results page; the sections they name must exist."""
    pointer = re.compile(r"docs/([\w/-]+\.md)(?:#([\w-]+))?")
    broken = []
    for source in sorted((ROOT / "tlearn").rglob("*.py")):
        for page, anchor in pointer.findall(source.read_text()):
            target = ROOT / "docs" / page
            if not target.is_file():
                broken.append(f"{source.relative_to(ROOT)}: docs/{page} does not exist")
            elif anchor and anchor not in _anchors(target):
                broken.append(f"{source.relative_to(ROOT)}: docs/{page} has no section #{anchor}")
    assert not broken, "\n".join(broken)


def test_home_page_reaches_every_guide_and_the_reference():
    """The site's home page links each guide (the nav alone is checked by mkdocs: omitted_files fails strict)."""
    targets = {t.partition("#")[0] for t in _relative_targets(ROOT / "docs" / "index.md")}
    pages = [f"guide/{p.name}" for p in sorted((ROOT / "docs" / "guide").glob("*.md"))]
    pages += ["api.md", "results.md", "design-notes.md", "licenses.md"]
    missing = [p for p in pages if p not in targets]
    assert not missing, f"docs/index.md does not link: {', '.join(missing)}"


def test_api_reference_documents_the_public_api():
    api = (ROOT / "docs" / "api.md").read_text()
    objects = set(re.findall(r"^::: ([\w.]+)", api, flags=re.M))
    for name in ["tlearn.fit", "tlearn.FitConfig", "tlearn.Run", "tlearn.load_run", "tlearn.rank_sources",
                 "tlearn.list_backbones", "tlearn.load_backbone", "tlearn.strategies.LinearProbe",
                 "tlearn.runtime.Classifier"]:
        assert name in objects, f"docs/api.md has no '::: {name}' section"
